"""Reading raw bytes of each source format into a document the mapping engine translates."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import tzinfo
from typing import Any, Protocol

from adapter.consortium import Facility
from adapter.errors import ParseError
from adapter.hl7v2 import Message, parse_hl7v2
from adapter.mapping.loader import MappingSet
from adapter.mapping.translate import Translation, TranslationContext, translate_hl7v2


class Document(Protocol):
    format: str
    encoding: str | None

    def translate(self, mappings: MappingSet, facility: Facility,
                  zone: tzinfo) -> Translation: ...


def facility_variables(facility: Facility) -> dict[str, Any]:
    """What mappings may read of the facility: ``@facility.id``, ``.name``, ``.identifiers``."""
    return {
        "id": facility.id,
        "name": facility.name,
        "level": facility.level.name,
        "namespace": facility.namespace,
        "identifiers": [{"system": i.system, "value": i.value} for i in facility.identifiers],
    }


def translation_context(facility: Facility, zone: tzinfo) -> TranslationContext:
    return TranslationContext(facility_system=facility.identifier_system,
                              variables={"facility": facility_variables(facility)},
                              timezone=zone)


@dataclass(slots=True)
class Hl7v2Document:
    message: Message
    format: str = "hl7v2"

    @property
    def encoding(self) -> str | None:
        return self.message.charset

    def translate(self, mappings: MappingSet, facility: Facility, zone: tzinfo) -> Translation:
        translation = translate_hl7v2(mappings, self.message,
                                      translation_context(facility, zone))
        # what the reader noticed (e.g. a declared charset that looks wrong) comes first
        translation.issues[:0] = self.message.issues
        return translation


def read_document(fmt: str, raw: bytes, *, max_bytes: int) -> Document:
    if fmt == "hl7v2":
        return Hl7v2Document(parse_hl7v2(raw, max_bytes=max_bytes))
    raise ParseError(f"source format {fmt!r} is not supported yet", location="format")

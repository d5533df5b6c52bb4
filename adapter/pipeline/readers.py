"""Reading raw bytes of each source format into a document the mapping engine translates."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import tzinfo
from typing import Any, Protocol

from adapter.consortium import Consortium, Facility
from adapter.errors import Issue, ParseError
from adapter.hl7v2 import parse_hl7v2
from adapter.mapping.csv_rows import read_csv
from adapter.mapping.json_paths import parse_json
from adapter.mapping.loader import MappingSet
from adapter.mapping.translate import (
    Translation,
    TranslationContext,
    translate_csv,
    translate_hl7v2,
    translate_json,
    translate_xml,
)
from adapter.pipeline.checks import check_resources
from adapter.xmlsafe import parse_xml


class Document(Protocol):
    format: str
    encoding: str | None

    def translate(
        self,
        mappings: MappingSet,
        facility: Facility,
        zone: tzinfo,
        extra: dict[str, Any] | None = None,
    ) -> Translation: ...


def facility_variables(facility: Facility) -> dict[str, Any]:
    """What mappings may read of the facility: ``@facility.id``, ``.name``, ``.identifiers``."""
    return {
        "id": facility.id,
        "name": facility.name,
        "level": facility.level.name,
        "rank": int(facility.level),  # village 1 < township < county < city < province 5
        "namespace": facility.namespace,
        "identifiers": [{"system": i.system, "value": i.value} for i in facility.identifiers],
    }


def consortium_variables(consortium: Consortium) -> dict[str, Any]:
    """``@consortium``: the member facilities as data (``facility_of``, ``level_direction``)."""
    return {
        "id": consortium.id,
        "name": consortium.name,
        "facilities": [facility_variables(f) for f in consortium.facilities],
    }


def original_variables(raw: bytes, content_type: str) -> dict[str, Any]:
    """``@original``: the bytes as received, for a template that keeps the original document
    (a DocumentReference whose attachment carries them): base64 ``data``, ``size``, ``sha1``
    (base64, as Attachment.hash wants), ``sha256`` (hex, for ids), ``content_type``."""
    return {
        "data": base64.b64encode(raw).decode("ascii"),
        "size": len(raw),
        "sha1": base64.b64encode(hashlib.sha1(raw).digest()).decode("ascii"),
        "sha256": hashlib.sha256(raw).hexdigest(),
        "content_type": content_type,
    }


# the media type of each source format, as an Attachment.contentType of the original
CONTENT_TYPES = {
    "hl7v2": "x-application/hl7-v2+er7",
    "cda": "application/hl7-cda+xml",
    "xml": "application/xml",
    "json": "application/json",
    "csv": "text/csv",
}


def translation_context(
    facility: Facility, zone: tzinfo, extra: dict[str, Any] | None = None
) -> TranslationContext:
    """``extra``: more context variables (``consortium``, ``original``) when the caller has them."""
    return TranslationContext(
        facility_system=facility.identifier_system,
        variables={"facility": facility_variables(facility), **(extra or {})},
        timezone=zone,
    )


@dataclass(slots=True)
class ParsedDocument:
    """A document read from bytes, ready to translate with its format's mappings."""

    format: str
    encoding: str | None
    reader_issues: list[Issue]  # what the reader noticed (an encoding guess): listed first
    _translate: Callable[[MappingSet, TranslationContext], Translation]

    def translate(
        self,
        mappings: MappingSet,
        facility: Facility,
        zone: tzinfo,
        extra: dict[str, Any] | None = None,
    ) -> Translation:
        translation = self._translate(mappings, translation_context(facility, zone, extra))
        translation.issues[:0] = self.reader_issues
        return translation


def read_document(fmt: str, raw: bytes, *, max_bytes: int) -> Document:
    """Parse ``raw`` as the source's format (``SourceSystem.format``); ParseError or
    InputTooLargeError (both quarantine the input) when it cannot be read."""
    if fmt == "hl7v2":
        message = parse_hl7v2(raw, max_bytes=max_bytes)
        return ParsedDocument(
            fmt, message.charset, message.issues, lambda m, c: translate_hl7v2(m, message, c)
        )
    if fmt in ("cda", "xml"):
        xml = parse_xml(raw, max_bytes=max_bytes)
        return ParsedDocument(
            fmt, xml.encoding, xml.issues, lambda m, c: translate_xml(m, xml.root, c)
        )
    if fmt == "json":
        parsed = parse_json(raw, max_bytes=max_bytes)
        return ParsedDocument(
            fmt, parsed.encoding, parsed.issues, lambda m, c: translate_json(m, parsed.data, c)
        )
    if fmt == "csv":
        # each row is translated, checked and imported on its own (see translate_csv)
        table = read_csv(raw, max_bytes=max_bytes)
        return ParsedDocument(
            fmt,
            table.encoding,
            table.issues,
            lambda m, c: translate_csv(m, table, c, check=check_resources),
        )
    raise ParseError(f"source format {fmt!r} is not supported", location="format")

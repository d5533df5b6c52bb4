"""Reading raw bytes of each source format into a document the mapping engine translates."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import tzinfo
from typing import Any, Protocol

from adapter.consortium import Consortium, Facility
from adapter.errors import Issue, ParseError
from adapter.hl7v2 import Message, parse_hl7v2
from adapter.mapping.csv_rows import CsvTable, read_csv
from adapter.mapping.json_paths import JsonDocumentData, parse_json
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
from adapter.xmlsafe import XmlDocument as ParsedXml
from adapter.xmlsafe import parse_xml


class Document(Protocol):
    format: str
    encoding: str | None

    def translate(self, mappings: MappingSet, facility: Facility, zone: tzinfo,
                  extra: dict[str, Any] | None = None) -> Translation: ...


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
    return {"id": consortium.id, "name": consortium.name,
            "facilities": [facility_variables(f) for f in consortium.facilities]}


def original_variables(raw: bytes, content_type: str) -> dict[str, Any]:
    """``@original``: the bytes as received, for a template that keeps the original document
    (a DocumentReference whose attachment carries them): base64 ``data``, ``size``, ``sha1``
    (base64, as Attachment.hash wants), ``sha256`` (hex, for ids), ``content_type``."""
    return {"data": base64.b64encode(raw).decode("ascii"), "size": len(raw),
            "sha1": base64.b64encode(hashlib.sha1(raw).digest()).decode("ascii"),
            "sha256": hashlib.sha256(raw).hexdigest(), "content_type": content_type}


# the media type of each source format, as an Attachment.contentType of the original
CONTENT_TYPES = {"hl7v2": "x-application/hl7-v2+er7", "cda": "application/hl7-cda+xml",
                 "xml": "application/xml", "json": "application/json", "csv": "text/csv"}


def translation_context(facility: Facility, zone: tzinfo,
                        extra: dict[str, Any] | None = None) -> TranslationContext:
    """``extra``: more context variables (``consortium``, ``original``) when the caller has them."""
    return TranslationContext(facility_system=facility.identifier_system,
                              variables={"facility": facility_variables(facility),
                                         **(extra or {})},
                              timezone=zone)


@dataclass(slots=True)
class Hl7v2Document:
    message: Message
    format: str = "hl7v2"

    @property
    def encoding(self) -> str | None:
        return self.message.charset

    def translate(self, mappings: MappingSet, facility: Facility, zone: tzinfo,
                  extra: dict[str, Any] | None = None) -> Translation:
        translation = translate_hl7v2(mappings, self.message,
                                      translation_context(facility, zone, extra))
        # what the reader noticed (e.g. a declared charset that looks wrong) comes first
        translation.issues[:0] = self.message.issues
        return translation


def _reader_first(translation: Translation, issues: list[Issue]) -> Translation:
    translation.issues[:0] = issues  # what the reader noticed (an encoding guess) comes first
    return translation


@dataclass(slots=True)
class XmlDocument:
    """A CDA or other XML document (format ``cda`` or ``xml``), mapped with the xml folder."""

    parsed: ParsedXml
    format: str = "xml"

    @property
    def encoding(self) -> str | None:
        return self.parsed.encoding

    def translate(self, mappings: MappingSet, facility: Facility, zone: tzinfo,
                  extra: dict[str, Any] | None = None) -> Translation:
        translation = translate_xml(mappings, self.parsed.root,
                                    translation_context(facility, zone, extra))
        return _reader_first(translation, self.parsed.issues)


@dataclass(slots=True)
class JsonDocument:
    parsed: JsonDocumentData
    format: str = "json"

    @property
    def encoding(self) -> str | None:
        return self.parsed.encoding

    def translate(self, mappings: MappingSet, facility: Facility, zone: tzinfo,
                  extra: dict[str, Any] | None = None) -> Translation:
        translation = translate_json(mappings, self.parsed.data,
                                     translation_context(facility, zone, extra))
        return _reader_first(translation, self.parsed.issues)


@dataclass(slots=True)
class CsvDocument:
    """A CSV file: each row is translated, checked and imported on its own (a bad row is
    reported with its row number and does not stop the others; see translate_csv)."""

    table: CsvTable
    format: str = "csv"

    @property
    def encoding(self) -> str | None:
        return self.table.encoding

    def translate(self, mappings: MappingSet, facility: Facility, zone: tzinfo,
                  extra: dict[str, Any] | None = None) -> Translation:
        translation = translate_csv(mappings, self.table,
                                    translation_context(facility, zone, extra),
                                    check=check_resources)
        return _reader_first(translation, self.table.issues)


def read_document(fmt: str, raw: bytes, *, max_bytes: int) -> Document:
    """Parse ``raw`` as the source's format (``SourceSystem.format``); ParseError or
    InputTooLargeError (both quarantine the input) when it cannot be read."""
    if fmt == "hl7v2":
        return Hl7v2Document(parse_hl7v2(raw, max_bytes=max_bytes))
    if fmt in ("cda", "xml"):
        return XmlDocument(parse_xml(raw, max_bytes=max_bytes), format=fmt)
    if fmt == "json":
        return JsonDocument(parse_json(raw, max_bytes=max_bytes))
    if fmt == "csv":
        return CsvDocument(read_csv(raw, max_bytes=max_bytes))
    raise ParseError(f"source format {fmt!r} is not supported", location="format")

"""Reading raw bytes of each source format into a document the mapping engine translates."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import tzinfo
from functools import partial
from typing import Any, Protocol

from adapter.consortium import Consortium, Facility
from adapter.errors import Issue, ParseError
from adapter.input_limits import DEFAULT_LIMITS, InputLimits
from adapter.mapping.formats import BY_SOURCE_FORMAT, MEDIA_TYPES
from adapter.mapping.nodes import MappingSet
from adapter.mapping.translation import Translation, TranslationContext
from adapter.pipeline.checks import check_resources


class Document(Protocol):
    format: str
    encoding: str | None

    def translate(
        self,
        mappings: MappingSet,
        facility: Facility,
        zone: tzinfo,
        extra: dict[str, Any] | None = None,
        deferred: dict[str, Callable[[], Any]] | None = None,
    ) -> Translation: ...

    def locate(self, value: str) -> str | None: ...


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


def original_variables(
    raw: bytes, content_type: str, *, inline: bool = True, url: str | None = None
) -> dict[str, Any]:
    """``@original``: the bytes as received, for a template that keeps the original document
    (a DocumentReference whose attachment carries them): base64 ``data`` when ``inline``,
    else ``url`` (where the stored message's bytes are served), ``size``, ``sha1`` (base64,
    as Attachment.hash wants), ``sha256`` (hex, for ids), ``content_type``."""
    return {
        "data": base64.b64encode(raw).decode("ascii") if inline else None,
        "url": None if inline else url,
        "size": len(raw),
        "sha1": base64.b64encode(hashlib.sha1(raw).digest()).decode("ascii"),
        "sha256": hashlib.sha256(raw).hexdigest(),
        "content_type": content_type,
    }


# the media type of each source format, as an Attachment.contentType of the original
CONTENT_TYPES = MEDIA_TYPES


def translation_context(
    facility: Facility,
    zone: tzinfo,
    extra: dict[str, Any] | None = None,
    deferred: dict[str, Callable[[], Any]] | None = None,
) -> TranslationContext:
    """``extra``: more context variables (``consortium``, ``original``) when the caller has
    them; ``deferred``: variables worked out only for a message mapping that can read them
    (``original``, decision 0144)."""
    return TranslationContext(
        facility_system=facility.identifier_system,
        variables={"facility": facility_variables(facility), **(extra or {})},
        timezone=zone,
        deferred=dict(deferred or {}),
    )


@dataclass(slots=True)
class ParsedDocument:
    """A document read from bytes, ready to translate with its format's mappings."""

    format: str
    encoding: str | None
    reader_issues: list[Issue]  # what the reader noticed (an encoding guess): listed first
    _translate: Callable[[MappingSet, TranslationContext], Translation]
    # where a produced value stands in the document (``row 3, column 转诊单号``, ``PRD[1]-2``)
    _locate: Callable[[str], str | None]

    def translate(
        self,
        mappings: MappingSet,
        facility: Facility,
        zone: tzinfo,
        extra: dict[str, Any] | None = None,
        deferred: dict[str, Callable[[], Any]] | None = None,
    ) -> Translation:
        context = translation_context(facility, zone, extra, deferred)
        translation = self._translate(mappings, context)
        translation.issues[:0] = self.reader_issues
        return translation

    def locate(self, value: str) -> str | None:
        return self._locate(value)


def read_document(
    fmt: str, raw: bytes, *, max_bytes: int, limits: InputLimits = DEFAULT_LIMITS
) -> Document:
    """Parse ``raw`` as the source's format (``SourceSystem.format``, read by the format of
    ``adapter.mapping.formats``); ParseError or InputTooLargeError (both quarantine the input)
    when it cannot be read or is over ``limits``."""
    source_format = BY_SOURCE_FORMAT.get(fmt)
    if source_format is None:
        raise ParseError(f"source format {fmt!r} is not supported", location="format")
    parsed = source_format.parse(raw, max_bytes=max_bytes, limits=limits)
    # a format that imports item by item (CSV rows) checks each item's resources itself
    return ParsedDocument(
        fmt,
        parsed.encoding,
        parsed.issues,
        lambda m, c: source_format.translate(m, parsed.document, c, check=check_resources),
        partial(source_format.locate_value, parsed.document),
    )

"""The source formats the mapping language reads, in one table.

Each format is one module defining a ``SourceFormat`` (``base.py``: parse, compile a path,
match a message mapping, list unread content, media type) and its instance ``FORMAT``. To
add a format (an HL7 v3 message, say): write ``adapter/mapping/formats/<name>.py`` and add its
``FORMAT`` to ``_ALL`` below; its mappings then live in ``mappings/<folder>/<name>/``.
The consortium's ``SourceSystem.format`` names what a source sends (``cda`` and ``xml`` are
both read by the ``xml`` format). See docs/mapping-formats.md.
"""

from __future__ import annotations

from adapter.mapping.formats import csv, hl7v2, json, xml
from adapter.mapping.formats.base import MatchError, Parsed, SourceFormat

_ALL: tuple[SourceFormat, ...] = (hl7v2.FORMAT, xml.FORMAT, json.FORMAT, csv.FORMAT)

# folder name (and ``format:`` of message mappings) -> the format
FORMATS: dict[str, SourceFormat] = {f.name: f for f in _ALL}
# SourceSystem.format -> the format that reads it
BY_SOURCE_FORMAT: dict[str, SourceFormat] = {
    source_format: f for f in _ALL for source_format in f.media_types
}
# SourceSystem.format -> the media type of the original document (Attachment.contentType)
MEDIA_TYPES: dict[str, str] = {
    source_format: media for f in _ALL for source_format, media in f.media_types.items()
}

__all__ = ["BY_SOURCE_FORMAT", "FORMATS", "MEDIA_TYPES", "MatchError", "Parsed", "SourceFormat"]

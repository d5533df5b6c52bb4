"""Splitting a file of HL7 v2 messages into one message per MSH (issue 15).

A laboratory export file may hold several messages one after the other (blank lines or LF /
CRLF between, no MLLP framing), or a batch (``FHS``/``BHS`` ... ``BTS``/``FTS``). Each message
is ingested on its own with its own raw bytes, so a message cut off at the end costs only
itself. The split is on bytes: a new message starts where ``MSH`` and the field separator
follow CR, LF or an MLLP start block 0x0B (or start the file, after a BOM). These bytes
are never part of a multibyte GBK / GB18030 / UTF-8 character, so a split can never fall
inside one.

Used by ``adapter ingest``, the file-drop inbound and ``adapter sync`` file sources, never by
``POST /ingest`` (one message per request) nor by MLLP (one frame, one message).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_BOM = b"\xef\xbb\xbf"
# a batch wrapper segment, or MSH, at the start of a line (after CR or LF, or the file's start)
# (a UTF-8 BOM before the first segment is not part of the message)
_LINE_START = re.compile(
    rb"(?:^|(?<=[\r\n\x0b])|(?<=^\xef\xbb\xbf))(MSH|FHS|BHS|BTS|FTS)(?=[^A-Za-z0-9\r\n\s])"
)
_WRAPPERS = frozenset({b"FHS", b"BHS", b"BTS", b"FTS"})
# content types that are not HL7 v2 text: such a document is never split
_NOT_V2 = ("xml", "json", "csv", "fhir")


@dataclass(frozen=True)
class Part:
    """One message of a file: ``raw`` is its slice of the file's bytes (from its MSH to the
    end of its last segment, wrapper segments and blank lines left out); ``start`` is the
    slice's byte offset in the file; ``number`` counts from 1 among ``total`` messages."""

    raw: bytes
    start: int
    number: int
    total: int

    def label(self, name: str) -> str:
        """``name`` itself for a file of one message, ``name [message 2 of 3]`` otherwise."""
        return name if self.total == 1 else f"{name} [message {self.number} of {self.total}]"


def looks_like_hl7v2(raw: bytes, content_type: str | None = None) -> bool:
    """True for bytes that start (after a BOM and white space) with MSH, FHS or BHS and a
    separator, unless the content type names another format (XML, JSON, CSV)."""
    if content_type and any(word in content_type.lower() for word in _NOT_V2):
        return False
    head = raw[:64].removeprefix(_BOM).lstrip(b" \t\r\n\x0b")
    return len(head) > 3 and head[:3] in (b"MSH", b"FHS", b"BHS") and not head[3:4].isalnum()


def surely_one_message(raw: bytes) -> bool:
    """True when ``split_messages`` would find one part in ``raw`` without splitting it: at
    most one ``MSH`` and no batch wrapper segment anywhere in the bytes (a cheap test: the
    night's report counts the messages of every file without scanning each one)."""
    return raw.count(b"MSH") <= 1 and not any(w in raw for w in _WRAPPERS)


def split_messages(raw: bytes, content_type: str | None = None) -> list[Part]:
    """The messages of a file, one :class:`Part` per MSH. A file that is not HL7 v2, holds
    one MSH and no batch wrapper, or holds no MSH at all is one part: its bytes unchanged
    (so its checksum, and what the parser says about it, stay as they were)."""
    whole = [Part(raw, 0, 1, 1)]
    if not looks_like_hl7v2(raw, content_type):
        return whole
    starts: list[int] = []
    wrapper_at: list[int] = []
    for match in _LINE_START.finditer(raw):
        (wrapper_at if match.group(1) in _WRAPPERS else starts).append(match.start())
    if not starts or (len(starts) == 1 and not wrapper_at):
        return whole
    ends = [*starts[1:], len(raw)]
    slices = []
    for start, end in zip(starts, ends, strict=True):
        # a wrapper segment after this message (BTS, FTS, the next batch's BHS) ends it
        end = min([w for w in wrapper_at if start < w < end] or [end])
        while end > start and raw[end - 1 : end] in (b"\r", b"\n", b" ", b"\t", b"\x1c", b"\x0b"):
            end -= 1
        slices.append((start, end))
    total = len(slices)
    return [Part(raw[s:e], s, n, total) for n, (s, e) in enumerate(slices, start=1)]

"""parse_hl7v2: bytes -> Message, or ParseError / InputTooLargeError with a location.

Order of work: size limit, framing, MSH-1/MSH-2/MSH-18 read from the MSH line as single
bytes (latin-1), decoding of the whole message with the charset found there, then a
plain split into segments and fields. Nothing below field level is touched here.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterator
from typing import AnyStr

from adapter.errors import InputTooLargeError, Issue, ParseError
from adapter.hl7v2.charsets import (
    GB_CODECS,
    codec_for,
    decode_declared,
    decode_undeclared,
    looks_like_utf8,
)
from adapter.hl7v2.escapes import Delimiters, delimiters_for
from adapter.hl7v2.framing import unframe
from adapter.hl7v2.message import Message, Segment
from adapter.hl7v2.truncation import truncated_error
from adapter.input_limits import DEFAULT_LIMITS, InputLimits, over_limit

_made = Segment.made  # a segment without its __init__ call (decision 0149)

_DELIMITER_CHARS = frozenset(string.punctuation)
_BYTES = (bytes, bytearray, memoryview)  # a tuple: a union would be made per message
_SEGMENT_NAME = re.compile(r"[A-Z0-9]{3}")
_SHOWABLE = re.compile(r"[A-Za-z0-9]{1,4}")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
# the same as bytes; no supported single- or multi-byte codec uses them inside a character
_CONTROL_BYTES = bytes(b for b in range(0x20) if b not in b"\t\n\r")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_REQUIRED_MSH = ((9, "message type"), (10, "message control id"), (12, "version id"))
_known_names: set[str] = set()  # segment names already validated (bounded below)


def parse_hl7v2(
    raw: bytes, *, max_bytes: int | None = None, limits: InputLimits = DEFAULT_LIMITS
) -> Message:
    """Read one HL7 v2 message. Raises only ParseError or InputTooLargeError for bad bytes;
    a message over one of ``limits`` (segments, fields, repetitions, components) is a
    ParseError with code ``too-costly`` at the first place over the limit."""
    if not isinstance(raw, _BYTES):
        raise TypeError(f"parse_hl7v2 takes bytes, not {type(raw).__name__}")
    if max_bytes is not None and len(raw) > max_bytes:
        raise InputTooLargeError(
            f"the input has {len(raw)} bytes, more than the limit of {max_bytes}",
            location="message",
        )
    framed = unframe(bytes(raw))
    issues: list[Issue] = []
    if framed.text is None:
        decoded = _decode_bytes(framed.data, framed.offset, issues)
    else:
        decoded = _check_utf16(framed.text, framed.codec or "utf-16", issues)
    text, codec, declared, fs, enc, maybe_control = decoded
    if framed.open_frame:
        raise truncated_error(text, "the MLLP start block (0x0B) has no end block (0x1C 0x0D)")
    if maybe_control and (bad := _CONTROL.search(text)) is not None:
        _raise_control(text, bad.start(), codec, framed.offset)
    delimiters = delimiters_for(fs, enc, codec)
    segments, lines = _split_segments(text, delimiters, limits)
    _check_required(segments[0])
    return Message(segments, lines, delimiters, codec, declared or None, issues)


# text, codec, MSH-18 as written, MSH-1, MSH-2, whether a control character may be present
Decoded = tuple[str, str, str, str, str, bool]


def _decode_bytes(data: bytes, offset: int, issues: list[Issue]) -> Decoded:
    if not data:
        raise ParseError("empty input: no HL7 v2 message", location="message")
    header_bytes = data[: _line_end(data, b"\r", b"\n")]
    fs, enc, header = _read_header(header_bytes.decode("latin-1"))
    declared = _declared_charset(header, enc)
    if (not declared or codec_for(declared) is None) and not header_bytes.isascii():
        declared = _recheck_declared(header_bytes, declared, fs, enc)
    if not declared:
        text, codec = decode_undeclared(data, offset)
    else:
        codec = _codec_or_error(declared)
        if codec.startswith(("utf-16", "utf-32")):
            raise ParseError(
                f"MSH-18 declares {declared!r} but the message is not {codec.upper()} "
                "encoded (its MSH segment reads as single bytes)",
                location="MSH-18",
            )
        text = decode_declared(data, declared, codec, offset)
        if codec in GB_CODECS and looks_like_utf8(data):
            issues.append(
                Issue(
                    "warning",
                    "value",
                    f"MSH-18 declares {declared!r} but the bytes are also valid UTF-8; read as "
                    "declared. If Chinese text looks garbled the sender's MSH-18 is wrong.",
                    location="MSH-18",
                )
            )
    # checked on the bytes (fast): no supported codec has control bytes inside a character
    maybe_control = len(data.translate(None, _CONTROL_BYTES)) != len(data)
    return text, codec, declared, fs, enc, maybe_control


def _check_utf16(text: str, codec: str, issues: list[Issue]) -> Decoded:
    if not text:
        raise ParseError("empty input: no HL7 v2 message", location="message")
    fs, enc, header = _read_header(text[: _line_end(text, "\r", "\n")])
    declared = _declared_charset(header, enc)
    if declared and not _codec_or_error(declared).startswith("utf-16"):
        issues.append(
            Issue(
                "warning",
                "value",
                f"MSH-18 declares {declared!r} but the input is {codec.upper()} (byte order mark "
                "or byte pattern); read as UTF-16",
                location="MSH-18",
            )
        )
    return text, codec, declared, fs, enc, True


def _line_end(data: AnyStr, cr: AnyStr, lf: AnyStr) -> int:
    ends = [i for i in (data.find(cr), data.find(lf)) if i >= 0]
    return min(ends) if ends else len(data)


def _read_header(header: str) -> tuple[str, str, list[str]]:
    """MSH-1, MSH-2 and the MSH fields (index = field number - 1 for fields >= 2)."""
    if not header.startswith("MSH"):
        found = header[:3]
        hint = (
            "; batches (FHS/BHS) are not read, send one message" if found in ("FHS", "BHS") else ""
        )
        raise ParseError(
            f"the message must start with an MSH segment, found {_shown(found)}{hint}",
            location="segment 1",
        )
    if len(header) < 4:
        raise ParseError("MSH-1 (field separator) is missing", location="MSH-1")
    fs = header[3]
    if fs not in _DELIMITER_CHARS:
        raise ParseError(
            f"MSH-1 field separator {fs!r} is not an ASCII punctuation character",
            location="MSH-1",
        )
    fields = header.split(fs)
    enc = fields[1]
    if not enc:
        raise ParseError("MSH-2 (encoding characters) is missing", location="MSH-2")
    if (
        len(enc) not in (4, 5)
        or len(set(enc)) != len(enc)
        or fs in enc
        or not set(enc) <= _DELIMITER_CHARS
    ):
        raise ParseError(
            f"MSH-2 encoding characters {enc[:8]!r} are not usable: expected 4 distinct "
            "punctuation characters (component, repetition, escape, subcomponent), "
            "optionally a 5th (truncation), none equal to MSH-1",
            location="MSH-2",
        )
    return fs, enc, fields


def _shown(name: str) -> str:
    """A would-be segment name for an error message; other text (a line broken inside a
    patient name or ID number) is described, never repeated."""
    if _SHOWABLE.fullmatch(name):
        return repr(name)
    return f"({len(name)} characters, not letters and digits)"


def _declared_charset(header: list[str], enc: str) -> str:
    """MSH-18, first repetition and component, stripped; "" when absent."""
    if len(header) < 18:
        return ""
    return header[17].split(enc[1])[0].split(enc[0])[0].strip()


def _recheck_declared(header_bytes: bytes, declared: str, fs: str, enc: str) -> str:
    """A GBK character in MSH-3..17 may have the field separator as its second byte (亅 is
    0x81 0x7C) and shift the single-byte count; read MSH-18 again from the GB18030-decoded
    line and take it when it names a GB charset or is empty."""
    try:
        header_bytes.decode("utf-8")
        return declared  # UTF-8 never uses ASCII bytes inside a character: the count is right
    except UnicodeDecodeError:
        pass
    try:
        text = header_bytes.decode("gb18030")
    except UnicodeDecodeError:
        return declared
    again = _declared_charset(text.split(fs), enc)
    return again if not again or codec_for(again) in GB_CODECS else declared


def _codec_or_error(declared: str) -> str:
    codec = codec_for(declared)
    if codec is None:
        raise ParseError(
            f"MSH-18 character set {declared[:40]!r} is not known; known values include "
            "'UNICODE UTF-8', 'GB 18030-2000', 'GBK', 'ASCII', '8859/1'",
            location="MSH-18",
        )
    return codec


def _raise_control(text: str, pos: int, codec: str, base_offset: int) -> None:
    before = _LINE_BREAK.split(text[:pos])
    segment = sum(1 for line in before[:-1] if line.strip()) + 1
    offset = base_offset + len(text[:pos].encode(codec, errors="replace"))
    raise ParseError(
        f"control character 0x{ord(text[pos]):02x} at byte offset {offset}: binary data "
        "(or a second MLLP frame) is not HL7 v2 text",
        location=f"segment {segment}",
    )


def _split_segments(
    text: str, d: Delimiters, limits: InputLimits
) -> tuple[list[Segment], list[str]]:
    if "\n" in text:
        text = text.replace("\r\n", "\r").replace("\n", "\r")
    fs, rs, ss, esc = d.field, d.repetition, d.subcomponent, d.escape
    max_segments = limits.segments
    # a line no longer than every per-segment limit cannot be over any of them
    short = min(limits.fields, limits.repetitions, limits.components)
    known = _known_names
    segments: list[Segment] = []
    lines: list[str] = []
    occurrences: dict[str, int] = {}
    for line in _lines(text, max_segments + 64):
        if not line:
            continue
        fields = line.split(fs)
        name = fields[0]
        if name not in known:
            if not line.strip():
                continue  # blank line
            if line[0].isspace():
                line = line.lstrip()
                fields = line.split(fs)
                name = fields[0]
            if not _SEGMENT_NAME.fullmatch(name):
                raise ParseError(
                    f"invalid segment name {_shown(name)}: expected 3 upper-case letters or "
                    "digits followed by the field separator",
                    location=f"segment {len(segments) + 1}",
                )
            if len(known) < 4096:
                known.add(name)
        if name == "MSH":
            if segments:
                raise ParseError(
                    "a second MSH segment: one message per input",
                    location=f"segment {len(segments) + 1}",
                )
            fields.insert(1, fs)  # MSH-1 is the separator itself
            flat = False
        else:
            flat = rs not in line and ss not in line and esc not in line
        if len(segments) >= max_segments:
            raise over_limit(
                f"the message has more than {max_segments} segments",
                max_segments,
                "max_segments",
                f"segment {max_segments + 1}",
            )
        n = occurrences[name] = occurrences.get(name, 0) + 1
        if len(line) > short:
            _check_shape(name, n, fields, d, limits)
        segments.append(_made(name, n, len(segments), fields, d, flat))  # no __init__ (0149)
        lines.append(line)
    return segments, lines


def _lines(text: str, chunk: int) -> Iterator[str] | list[str]:
    """The CR-separated lines of ``text``, split ``chunk`` at a time: a message of a million
    tiny segments is refused at the segment limit without first splitting all of it. A
    message of fewer lines is one list (decision 0149: a generator's every step is resumed
    from C, in an interpreter loop of its own)."""
    parts = text.split("\r", chunk)
    if len(parts) <= chunk:
        return parts
    return _lines_beyond(parts, chunk)


def _lines_beyond(parts: list[str], chunk: int) -> Iterator[str]:
    """``_lines`` of a text whose first split gave ``parts`` (more than ``chunk`` lines)."""
    while True:
        rest = parts.pop()
        yield from parts
        parts = rest.split("\r", chunk)
        if len(parts) <= chunk:
            yield from parts
            return


def _check_shape(
    name: str, occurrence: int, fields: list[str], d: Delimiters, limits: InputLimits
) -> None:
    """Fields per segment, repetitions per field, components per repetition and
    subcomponents per component within ``limits``; str.count first, so a segment under
    every limit costs a few C-level scans of its line."""
    where = f"{name}[{occurrence}]"
    start = 3 if name == "MSH" else 1  # MSH-1 and MSH-2 are the separators themselves
    if len(fields) - 1 > limits.fields:
        raise over_limit(
            f"segment {where} has {len(fields) - 1} fields",
            limits.fields,
            "max_fields",
            f"{where}-{limits.fields + 1}",
        )
    # no field longer than both limits: none can be over either (the loop below would pass
    # every field at its first test), told by one scan in C (decision 0144)
    small = min(limits.components, limits.repetitions)
    if max(map(len, fields)) <= small:
        return
    rs, cs, ss = d.repetition, d.component, d.subcomponent
    for number in range(start, len(fields)):
        value = fields[number]
        if len(value) <= small:
            continue
        if value.count(rs) >= limits.repetitions:
            raise over_limit(
                f"field {where}-{number} has {value.count(rs) + 1} repetitions",
                limits.repetitions,
                "max_repetitions",
                f"{where}-{number}",
            )
        if value.count(cs) < limits.components and value.count(ss) < limits.components:
            continue
        for rep_no, rep in enumerate(value.split(rs), 1):
            if rep.count(cs) >= limits.components:
                raise over_limit(
                    f"field {where}-{number}[{rep_no}] has {rep.count(cs) + 1} components",
                    limits.components,
                    "max_components",
                    f"{where}-{number}[{rep_no}]",
                )
            for comp_no, comp in enumerate(rep.split(cs), 1):
                if comp.count(ss) >= limits.components:
                    raise over_limit(
                        f"component {where}-{number}[{rep_no}].{comp_no} has "
                        f"{comp.count(ss) + 1} subcomponents",
                        limits.components,
                        "max_components",
                        f"{where}-{number}[{rep_no}].{comp_no}",
                    )


def _check_required(msh: Segment) -> None:
    for number, label in _REQUIRED_MSH:
        if not msh.get(number):
            have = msh.field_count()
            why = (
                f"the MSH segment ends after MSH-{have}" if have < number else "the field is empty"
            )
            raise ParseError(f"MSH-{number} ({label}) is missing: {why}", location=f"MSH-{number}")

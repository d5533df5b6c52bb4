"""Remove what surrounds the message: whitespace, MLLP framing (0x0B ... 0x1C 0x0D), BOMs.

UTF-16 input (with a BOM, or recognisable by ``M\\0S\\0H\\0``) is decoded here, since
nothing else can be read from it byte-wise.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from adapter.errors import ParseError

# bytes.lstrip() whitespace plus nothing else: space, \t \n \r, 0x0B (MLLP start), 0x0C
_WS = b" \t\r\n\x0b\x0c"
_WS_STR = " \t\r\n\x0b\x0c"
_BOM_UTF8 = b"\xef\xbb\xbf"
_UTF16_STARTS: tuple[tuple[bytes, str, int], ...] = (
    # (prefix, codec, bytes to skip)
    (b"\xff\xfe", "utf-16-le", 2),
    (b"\xfe\xff", "utf-16-be", 2),
    (b"M\x00S\x00H\x00", "utf-16-le", 0),
    (b"\x00M\x00S\x00H", "utf-16-be", 0),
)
# whitespace, MLLP start blocks and UTF-8 BOMs in any order (linear, whatever the input)
_LEADING = re.compile(rb"(?:[ \t\r\n\x0b\x0c]|\xef\xbb\xbf)*")


@dataclass(slots=True)
class Unframed:
    """The message proper: bytes (``offset`` = where they start in the input) or, for
    UTF-16 input, text already decoded with ``codec``."""

    data: bytes = b""
    offset: int = 0
    text: str | None = None
    codec: str | None = None
    open_frame: bool = False  # an MLLP start block without an end block: cut in transfer


def unframe(raw: bytes) -> Unframed:
    start = _skip_leading(raw, 0)
    for prefix, codec, skip in _UTF16_STARTS:
        if raw.startswith(prefix, start):
            return _unframe_utf16(raw, start + skip, codec)
    end = len(raw)
    tail = raw.rstrip(_WS)
    closed = tail.endswith(b"\x1c")
    if closed:  # MLLP end block; whatever followed it was CR/whitespace
        end = len(tail) - 1
    # other trailing whitespace stays: blank last lines are skipped when splitting segments,
    # and spaces at the end of the last field are data
    return Unframed(
        data=raw[start:end] if (start, end) != (0, len(raw)) else raw,
        offset=start,
        open_frame=not closed and b"\x0b" in raw[:start],
    )


def _skip_leading(raw: bytes, start: int) -> int:
    match = _LEADING.match(raw, start)
    return match.end() if match else start


def _unframe_utf16(raw: bytes, start: int, codec: str) -> Unframed:
    body = raw[start:]
    ended = False
    # a single-byte MLLP end block after UTF-16 text; cut only at a code-unit boundary
    for tail in (b"\x1c\r\n", b"\x1c\r", b"\x1c\n", b"\x1c"):
        if body.endswith(tail) and (len(body) - len(tail)) % 2 == 0:
            body = body[: -len(tail)]
            ended = True
            break
    try:
        text = body.decode(codec)
    except UnicodeDecodeError as exc:
        raise ParseError(
            f"the input looks like {codec.upper()} but bytes at offset {start + exc.start} "
            f"are not valid {codec}: {exc.reason}",
            location="message",
        ) from None
    stripped = text.lstrip(_WS_STR + "\ufeff")
    started = b"\x0b" in raw[:start] or "\x0b" in text[: len(text) - len(stripped)]
    text = stripped
    tail = text.rstrip(_WS_STR)
    closed = tail.endswith("\x1c") or ended
    if tail.endswith("\x1c"):
        text = tail[:-1]
    return Unframed(text=text, codec=codec, offset=start, open_frame=started and not closed)

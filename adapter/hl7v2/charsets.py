"""MSH-18 character sets -> Python codecs, and decoding that never mangles text.

Values follow HL7 table 0211 plus the spellings Chinese HIS vendors actually send.
Lookup ignores case, spaces, hyphens and underscores ("GB 18030-2000" == "gb18030-2000").
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

from adapter.errors import ParseError
from adapter.hl7v2.truncation import decoded_prefix, truncated_error

# MSH-18 as written -> codec. GB2312 and GBK are read with GB18030, their superset: many HIS
# declare GB2312 while sending GBK/GB18030 characters (rare name characters such as 䶮 or
# 镕), and GB18030 reads every valid GB2312/GBK byte sequence as the same character.
CHARSET_TABLE: dict[str, str] = {
    "ASCII": "ascii",
    "US-ASCII": "ascii",
    "8859/1": "latin-1",
    "8859/2": "iso8859-2",
    "8859/3": "iso8859-3",
    "8859/4": "iso8859-4",
    "8859/5": "iso8859-5",
    "8859/6": "iso8859-6",
    "8859/7": "iso8859-7",
    "8859/8": "iso8859-8",
    "8859/9": "iso8859-9",
    "8859/15": "iso8859-15",
    "ISO-8859-1": "latin-1",
    "UNICODE UTF-8": "utf-8",
    "UTF-8": "utf-8",
    "UNICODE UTF-16": "utf-16",
    "UTF-16": "utf-16",
    "UNICODE UTF-32": "utf-32",
    "UTF-32": "utf-32",
    "UNICODE": "utf-16",  # HL7 v2.3-2.5 "UNICODE" (UCS-2)
    "GB 18030-2000": "gb18030",
    "GB 18030-2005": "gb18030",
    "GB 18030-2022": "gb18030",
    "GB18030": "gb18030",
    "GBK": "gb18030",
    "CP936": "gb18030",
    "GB2312": "gb18030",
    "GB 2312": "gb18030",
    "EUC-CN": "gb18030",
    "BIG-5": "big5",
    "BIG5": "big5",
    "CNS 11643-1992": "big5",
}

GB_CODECS = frozenset({"gb18030", "gbk", "gb2312"})


def _normalise(name: str) -> str:
    return "".join(ch for ch in name.upper() if ch not in " -_")


_LOOKUP: dict[str, str] = {_normalise(k): v for k, v in CHARSET_TABLE.items()}


@lru_cache(maxsize=256)
def codec_for(declared: str) -> str | None:
    """The Python codec for an MSH-18 value, or None when it is unknown."""
    return _LOOKUP.get(_normalise(declared))


def decode_declared(data: bytes, declared: str, codec: str, base_offset: int) -> str:
    """Decode with the declared codec; invalid bytes -> ParseError at MSH-18."""
    try:
        return data.decode(codec)
    except UnicodeDecodeError as exc:
        _raise_if_truncated(data, codec, exc, base_offset)
        offset = base_offset + exc.start
        bad = data[exc.start : exc.start + 4].hex(" ")
        raise ParseError(
            f"MSH-18 declares {declared!r} ({codec}) but the bytes at offset {offset} "
            f"({bad}) are not valid {codec}: {exc.reason}",
            location="MSH-18",
        ) from None


def decode_undeclared(data: bytes, base_offset: int) -> tuple[str, str]:
    """No MSH-18: UTF-8 when the bytes are valid UTF-8, else GB18030, else ParseError."""
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as exc:
        # its offsets, not the exception: kept, it would hold its traceback, whose frame
        # holds it (a cycle that kept the caller's frames and the parsed message for the
        # cyclic garbage collector; decision 0100)
        utf8_error = _Offsets(exc.start, exc.end)
    # valid UTF-8 with non-ASCII characters before the error: UTF-8 text, maybe cut short
    if not data[: utf8_error.start].isascii():
        _raise_if_truncated(data, "utf-8", utf8_error, base_offset)
    try:
        return data.decode("gb18030"), "gb18030"
    except UnicodeDecodeError as exc:
        _raise_if_truncated(data, "gb18030", exc, base_offset)
        raise ParseError(
            "MSH-18 (character set) is empty and the bytes are neither UTF-8 (invalid byte "
            f"0x{data[utf8_error.start]:02x} at offset {base_offset + utf8_error.start}) nor "
            f"GB18030 (invalid byte 0x{data[exc.start]:02x} at offset "
            f"{base_offset + exc.start}); declare the charset in MSH-18",
            location="MSH-18",
        ) from None


class _Offsets(NamedTuple):
    """Where a UnicodeDecodeError found the bytes it could not decode."""

    start: int
    end: int


def _raise_if_truncated(
    data: bytes, codec: str, exc: UnicodeDecodeError | _Offsets, base_offset: int
) -> None:
    """Bytes valid up to an incomplete last character: the input was cut, not mis-declared."""
    if exc.end != len(data):
        return
    prefix = decoded_prefix(data, codec)
    if prefix is not None:
        raise truncated_error(
            prefix,
            f"it ends at byte offset {base_offset + len(data)} inside a {codec} "
            "character (unexpected end of data)",
        )


def looks_like_utf8(data: bytes) -> bool:
    """True when ``data`` holds non-ASCII bytes and all of it is valid UTF-8."""
    if data.isascii():
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True

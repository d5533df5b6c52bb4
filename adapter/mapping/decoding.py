"""Decoding text documents that cannot declare their encoding (JSON, CSV)."""

from __future__ import annotations

import codecs

from adapter.errors import Issue, ParseError

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def utf8_or_gb18030(raw: bytes, subject: str, *, location: str, hint: str = "") -> tuple[str, str]:
    """Undeclared bytes: UTF-8 when they are valid UTF-8, else GB18030 (what Chinese Windows
    software writes); neither is a ParseError naming both offending bytes."""
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as exc:
        utf8_start = exc.start  # not the exception: its traceback's frame would hold it (0100)
    try:
        return raw.decode("gb18030"), "gb18030"
    except UnicodeDecodeError as exc:
        raise ParseError(
            f"{subject} are neither UTF-8 (invalid byte 0x{raw[utf8_start]:02x} at "
            f"offset {utf8_start}) nor GB18030 (invalid byte 0x{raw[exc.start]:02x} at "
            f"offset {exc.start}){hint}",
            location=location,
        ) from None


def decode_text(
    raw: bytes, issues: list[Issue], *, what: str, warn_gb18030: bool = True
) -> tuple[str, str]:
    """Text files without a declared encoding: a byte order mark wins, else UTF-8 when the
    bytes are valid UTF-8, else GB18030 (what Chinese Windows software writes)."""
    for bom, codec in _BOMS:
        if raw.startswith(bom):
            try:
                return raw.decode(codec), codec.removesuffix("-sig")
            except UnicodeDecodeError as exc:
                raise ParseError(
                    f"the byte order mark says {codec.removesuffix('-sig')} but "
                    f"the bytes at offset {exc.start} are not: {exc.reason}",
                    location="document",
                ) from None
    text, codec = utf8_or_gb18030(raw, f"the {what} bytes", location="document")
    if codec == "utf-8":
        return text, codec
    if warn_gb18030:
        issues.append(
            Issue(
                "warning",
                "value",
                f"the {what} document is not UTF-8; read as GB18030",
                location="document",
            )
        )
    return text, "gb18030"

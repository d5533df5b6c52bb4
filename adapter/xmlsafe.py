"""The one hardened XML parser of the adapter: every XML document (CDA or other) is read here.

Untrusted XML is refused before libxml2 could do anything dangerous with it:

* a size limit (``InputTooLargeError``), checked on the bytes;
* no DTD is loaded, no entity is expanded, no network or file is fetched; a DOCTYPE that
  declares entities (billion laughs) or names an external DTD (XXE) is refused outright with
  a ``ParseError`` at its line and column, before the parser sees the document;
* libxml2's own limits stay on (``huge_tree=False``: nesting depth 256, text nodes 10 MB).

Encodings: a byte order mark wins (UTF-8, UTF-16, UTF-32); else the XML declaration's
``encoding`` is honoured (GBK and GB2312 are read as GB18030, their superset, as for HL7 v2);
without a declaration the bytes are UTF-8 when they are valid UTF-8, else GB18030 (with a
warning): text is never mangled. The document is decoded here, in Python, and handed to
libxml2 as UTF-8, so what libxml2 reads is exactly what was decoded.
"""

from __future__ import annotations

import codecs
import re
import threading
from dataclasses import dataclass, field

from lxml import etree

from adapter.errors import InputTooLargeError, Issue, ParseError
from adapter.hl7v2.charsets import GB_CODECS, codec_for, looks_like_utf8
from adapter.mapping.decoding import utf8_or_gb18030

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),  # before UTF-16 LE: it starts with the same two bytes
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
# "<?" written in UTF-16 without a byte order mark
_UTF16_NO_BOM = ((b"<\x00?\x00", "utf-16-le"), (b"\x00<\x00?", "utf-16-be"))
_DECLARATION = re.compile(
    r"""^\s*<\?xml\s[^?>]*?encoding\s*=\s*(?P<q>["'])(?P<enc>[A-Za-z0-9._:\- ]*)(?P=q)"""
)
_DECLARATION_TEXT = re.compile(r"""^(\ufeff?\s*<\?xml\s[^?>]*?encoding\s*=\s*["'])([^"']*)(["'])""")
_LOCATION_SUFFIX = re.compile(r",\s*line \d+,\s*column \d+\s*$")


@dataclass(slots=True)
class XmlDocument:
    """A parsed XML document and how its bytes were read."""

    root: etree._Element
    encoding: str  # the Python codec used ("utf-8", "gb18030", "utf-16")
    declared_encoding: str | None  # as written in the XML declaration
    issues: list[Issue] = field(default_factory=list)  # what the reader noticed (warnings)


_local = threading.local()  # lxml parsers must not be shared between threads


def _parser() -> etree.XMLParser:
    parser = getattr(_local, "parser", None)
    if parser is None:
        parser = etree.XMLParser(
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            dtd_validation=False,
            huge_tree=False,
            remove_comments=False,
            remove_pis=False,
            encoding="utf-8",
        )
        _local.parser = parser
    return parser


def parse_xml(raw: bytes, *, max_bytes: int | None = None) -> XmlDocument:
    """Read untrusted XML bytes; raise ``ParseError`` (with a line and column where there is
    one) or ``InputTooLargeError``."""
    if max_bytes is not None and len(raw) > max_bytes:
        raise InputTooLargeError(
            f"the document is {len(raw)} bytes; the limit is {max_bytes}", location="body"
        )
    if not raw.strip():
        raise ParseError("empty input: no XML document", location="document")
    issues: list[Issue] = []
    text, codec, declared = _decode(raw, issues)
    _refuse_doctype(text)
    data = _DECLARATION_TEXT.sub(r"\1UTF-8\3", text, count=1).lstrip("\ufeff").encode("utf-8")
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as exc:
        line, column = exc.position if exc.position else (exc.lineno, 0)
        reason = _LOCATION_SUFFIX.sub("", exc.msg or "not well-formed XML")
        raise ParseError(
            f"the document is not well-formed XML: {reason}", location=_where(line, column)
        ) from None
    docinfo = root.getroottree().docinfo
    if docinfo.system_url or docinfo.public_id:  # a second guard; refused above already
        raise ParseError(
            "the document names an external DTD; such documents are refused", location="line 1"
        )
    return XmlDocument(root, codec, declared, issues)


def _where(line: int | None, column: int | None) -> str:
    if not line:
        return "document"
    return f"line {line}, column {column}" if column else f"line {line}"


# -- encodings -------------------------------------------------------------------------------


def _decode(raw: bytes, issues: list[Issue]) -> tuple[str, str, str | None]:
    for bom, codec in _BOMS:
        if raw.startswith(bom):
            text = _decode_with(raw, codec, f"the byte order mark says {_family(codec).upper()}")
            declared = _declared_in(text)
            _check_declared_unicode(declared, codec, issues)
            return text, codec.removesuffix("-sig"), declared
    for prefix, codec in _UTF16_NO_BOM:
        if raw.startswith(prefix):
            text = _decode_with(raw, codec, f"the byte pattern says {_family(codec).upper()}")
            declared = _declared_in(text)
            _check_declared_unicode(declared, codec, issues)
            return text, codec, declared
    declared = _declared_in(raw[:200].decode("latin-1"))
    if declared:
        codec = _codec(declared)
        if codec.startswith(("utf-16", "utf-32")):
            raise ParseError(
                f"the XML declaration says encoding {declared!r} but the document is not "
                f"{codec.upper()} encoded (no byte order mark, the declaration reads as single "
                "bytes)",
                location="line 1",
            )
        text = _decode_with(raw, codec, f"the XML declaration says {declared!r}")
        if codec in GB_CODECS and looks_like_utf8(raw):
            issues.append(
                Issue(
                    "warning",
                    "value",
                    f"the XML declaration says {declared!r} but the bytes are also valid UTF-8; "
                    "read as declared. If Chinese text looks garbled the sender's declaration is "
                    "wrong.",
                    location="line 1",
                )
            )
        return text, codec, declared
    text, codec = utf8_or_gb18030(
        raw,
        "the document declares no encoding and its bytes",
        location="line 1",
        hint="; declare the encoding in the XML declaration",
    )
    if codec == "utf-8":
        return text, codec, None
    issues.append(
        Issue(
            "warning",
            "value",
            "the document declares no encoding and is not UTF-8; read as GB18030. The sender "
            'should declare it (<?xml version="1.0" encoding="GB18030"?>).',
            location="line 1",
        )
    )
    return text, "gb18030", None


def _declared_in(head: str) -> str | None:
    match = _DECLARATION.match(head.lstrip("\ufeff"))
    return match.group("enc").strip() or None if match else None


def _codec(declared: str) -> str:
    codec = codec_for(declared)
    if codec is not None:
        return codec
    try:
        info = codecs.lookup(declared)
    except LookupError:
        info = None
    if info is None or not getattr(info, "_is_text_encoding", True):
        raise ParseError(
            f"the XML declaration names an unknown encoding {declared!r}", location="line 1"
        )
    return info.name


def _decode_with(raw: bytes, codec: str, claim: str) -> str:
    try:
        return raw.decode(codec)
    except UnicodeDecodeError as exc:
        line = (
            None if _family(codec) in ("utf-16", "utf-32") else raw.count(b"\n", 0, exc.start) + 1
        )
        bad = raw[exc.start : exc.start + 4].hex(" ")
        where = f"line {line}" if line else "document"
        raise ParseError(
            f"{claim} but the bytes at offset {exc.start} ({bad}) are not valid "
            f"{codec}: {exc.reason}",
            location=where,
        ) from None


def _family(codec: str) -> str:
    name = codec.lower().replace("_", "-")
    for family in ("utf-8", "utf-16", "utf-32"):
        if name.startswith(family):
            return family
    return name


def _check_declared_unicode(declared: str | None, codec: str, issues: list[Issue]) -> None:
    if declared is None or _family(_codec(declared)) == _family(codec):
        return
    issues.append(
        Issue(
            "warning",
            "value",
            f"the XML declaration says {declared!r} but the document is {_family(codec).upper()} "
            "(byte order mark or byte pattern); read as the bytes are",
            location="line 1",
        )
    )


# -- DOCTYPE ---------------------------------------------------------------------------------

_PROLOG_ITEM = re.compile(r"\s+|<\?.*?\?>|<!--.*?-->", re.DOTALL)
_DOCTYPE = re.compile(r"<!DOCTYPE\b", re.IGNORECASE)
_EXTERNAL_ID = re.compile(r"<!DOCTYPE\s+[^\s\[>]+\s+(SYSTEM|PUBLIC)\b", re.IGNORECASE)
_ENTITY_DECLARATION = re.compile(r"<!ENTITY\b", re.IGNORECASE)


def _refuse_doctype(text: str) -> None:
    """Refuse a DOCTYPE naming an external DTD and any entity declaration.

    ``<!ENTITY`` is searched in the whole text, not only inside the DOCTYPE: outside a
    DOCTYPE it can only stand in a comment or CDATA section, and a search that cannot be
    fooled by brackets or quotes inside the internal subset is worth that rare refusal."""
    entity = _ENTITY_DECLARATION.search(text)
    if entity:
        raise ParseError(
            "the document declares entities (<!ENTITY); entity declarations are refused "
            "(they can expand without bound or read local files)",
            location=_line_column(text, entity.start()),
        )
    pos = 1 if text.startswith("\ufeff") else 0
    while True:
        match = _PROLOG_ITEM.match(text, pos)
        if not match or match.end() == pos:
            break
        pos = match.end()
    if _DOCTYPE.match(text, pos) and _EXTERNAL_ID.match(text, pos):
        raise ParseError(
            "the document names an external DTD (DOCTYPE ... SYSTEM/PUBLIC); external "
            "references are never fetched and such documents are refused",
            location=_line_column(text, pos),
        )


def _line_column(text: str, pos: int) -> str:
    line = text.count("\n", 0, pos) + 1
    column = pos - (text.rfind("\n", 0, pos) + 1) + 1
    return f"line {line}, column {column}"

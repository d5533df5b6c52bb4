"""A stored message as the console shows it: the bytes decoded (by the encoding the reader
found), HL7 v2 one segment a line, XML and JSON pretty-printed, identifiers masked
(adapter/console/masking.py), and each located issue marked where it points:

* HL7 v2 ``OBX[3]-5`` / ``MSH-9`` / ``PID``: that field of that occurrence of the segment
  (the whole segment when no field is named or the field is empty);
* XML ``/ClinicalDocument/component[2]/...``: the line of that element (namespaces
  ignored; an attribute or ``text()`` step marks its element);
* ``line N`` / ``row N``: that line (CSV rows and parser positions).

An issue that cannot be placed stays in the issue list only.
"""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from adapter.console.masking import mask_csv, mask_hl7_line, mask_markup
from adapter.errors import AdapterError
from adapter.xmlsafe import parse_xml

_HL7_LOCATION = re.compile(r"^([A-Z][A-Z0-9]{2})(?:\[(\d+)\])?(?:-(\d+))?")
_LINE_LOCATION = re.compile(r"\b(?:line|row)\s+(\d+)", re.IGNORECASE)
_XML_STEP = re.compile(r"^([\w.\-]+:)?([\w.\-]+)(?:\[(\d+)\])?$")


@dataclass
class Span:
    text: str
    issue: int | None = None  # index into the issue list
    severity: str | None = None


@dataclass
class Line:
    number: int
    spans: list[Span] = field(default_factory=list)


@dataclass
class SourceView:
    lines: list[Line]
    placed: set[int]  # issues marked in the text
    kind: str  # hl7v2 | xml | json | text


def _decode(raw: bytes, encoding: str | None) -> str:
    for codec in (encoding, "utf-8", "gb18030"):
        if not codec:
            continue
        try:
            return raw.decode(codec)
        except (LookupError, UnicodeDecodeError):
            continue
    return raw.decode("utf-8", errors="replace")


def build(
    raw: bytes, fmt: str | None, encoding: str | None, issues: list[dict[str, Any]]
) -> SourceView:
    text = _decode(raw, encoding)
    if fmt == "hl7v2" or text.lstrip("\x0b").startswith("MSH"):
        return _hl7(text, issues)
    if fmt in ("xml", "cda") or text.lstrip("\ufeff \r\n\t").startswith("<"):
        return _xml(raw, text, issues)
    if fmt == "json":
        with contextlib.suppress(ValueError):
            text = json.dumps(json.loads(text), ensure_ascii=False, indent=2)
        return _plain(mask_markup(text), issues, "json")
    if fmt == "csv":
        return _plain(mask_csv(text), issues, "csv")
    return _plain(mask_markup(text), issues, "text")


def _plain(text: str, issues: list[dict[str, Any]], kind: str) -> SourceView:
    lines = [Line(i + 1, [Span(t)]) for i, t in enumerate(text.splitlines())]
    placed: set[int] = set()
    for index, issue in enumerate(issues):
        found = _LINE_LOCATION.search(str(issue.get("location") or ""))
        if found and 1 <= int(found.group(1)) <= len(lines):
            line = lines[int(found.group(1)) - 1]
            if line.spans[0].issue is None:
                line.spans = [Span(line.spans[0].text, index, issue.get("severity"))]
                placed.add(index)
    return SourceView(lines, placed, kind)


# -- HL7 v2 ----------------------------------------------------------------------------------
def _hl7(text: str, issues: list[dict[str, Any]]) -> SourceView:
    text = text.strip("\x0b\x1c\r\n")
    segments = [s for s in re.split(r"\r\n|\r|\n", text) if s]
    field_sep = segments[0][3] if segments and len(segments[0]) > 3 else "|"
    encoding_chars = segments[0][4:8] if segments else "^~\\&"
    component = encoding_chars[0] if encoding_chars else "^"
    repetition = encoding_chars[1] if len(encoding_chars) > 1 else "~"
    masked = [mask_hl7_line(s, field_sep, component, repetition) for s in segments]
    marks: dict[int, list[tuple[int | None, int, str | None]]] = {}  # line -> (field, issue)
    for index, issue in enumerate(issues):
        found = _HL7_LOCATION.match(str(issue.get("location") or ""))
        if not found:
            continue
        name, occurrence, field_no = found.group(1), int(found.group(2) or 1), found.group(3)
        seen = 0
        for line_no, segment in enumerate(masked):
            if segment[:3] == name:
                seen += 1
                if seen == occurrence:
                    marks.setdefault(line_no, []).append(
                        (int(field_no) if field_no else None, index, issue.get("severity"))
                    )
                    break
    lines = [
        Line(no + 1, _hl7_spans(seg, field_sep, marks.get(no, []))) for no, seg in enumerate(masked)
    ]
    placed = {index for found in marks.values() for _, index, _ in found}
    return SourceView(lines, placed, "hl7v2")


def _hl7_spans(
    segment: str, sep: str, marks: list[tuple[int | None, int, str | None]]
) -> list[Span]:
    if not marks:
        return [Span(segment)]
    fields = segment.split(sep)
    by_field: dict[int, tuple[int, str | None]] = {}
    whole: tuple[int, str | None] | None = None
    for field_no, index, severity in marks:
        # MSH-1 is the separator itself: MSH-n is the (n-1)th piece after "MSH"
        position = None if field_no is None else (field_no - 1 if fields[0] == "MSH" else field_no)
        if position is None or position >= len(fields) or position < 1 or not fields[position]:
            whole = whole or (index, severity)
        else:
            by_field.setdefault(position, (index, severity))
    if whole is not None and not by_field:
        return [Span(segment, *whole)]
    spans: list[Span] = []
    for position, value in enumerate(fields):
        if position:
            spans.append(Span(sep))
        if position in by_field:
            spans.append(Span(value, *by_field[position]))
        elif position == 0 and whole is not None:
            spans.append(Span(value, *whole))
        else:
            spans.append(Span(value))
    return spans


# -- XML ---------------------------------------------------------------------------------------
def _xml(raw: bytes, text: str, issues: list[dict[str, Any]]) -> SourceView:
    try:
        root = parse_xml(raw).root
        pretty = etree.tostring(root, pretty_print=True, encoding="unicode")
        tree = etree.fromstring(pretty.encode("utf-8"))
    except (AdapterError, etree.XMLSyntaxError, ValueError):
        return _plain(mask_markup(text), issues, "text")
    lines = [Line(i + 1, [Span(t)]) for i, t in enumerate(mask_markup(pretty).splitlines())]
    placed: set[int] = set()
    for index, issue in enumerate(issues):
        location = str(issue.get("location") or "")
        line_no = _xml_line(tree, location) if location.startswith("/") else None
        if line_no is None:
            found = _LINE_LOCATION.search(location)
            line_no = int(found.group(1)) if found else None
        if line_no and 1 <= line_no <= len(lines):
            line = lines[line_no - 1]
            if line.spans[0].issue is None:
                line.spans = [Span(line.spans[0].text, index, issue.get("severity"))]
            placed.add(index)
    return SourceView(lines, placed, "xml")


def _xml_line(tree: etree._Element, location: str) -> int | None:
    """The source line of the deepest element of a slash path that exists."""
    steps = [s for s in location.split("/") if s]
    xpath = ""
    best: int | None = None
    for step in steps:
        if step.startswith("@") or step.endswith("()"):
            break
        found = _XML_STEP.match(step)
        if not found:
            break
        xpath += f"/*[local-name()='{found.group(2)}']"
        if found.group(3):
            xpath += f"[{int(found.group(3))}]"
        try:
            hits = tree.getroottree().xpath(xpath)
        except etree.XPathError:
            break
        if not hits or not isinstance(hits, list):
            break
        element = hits[0]
        if isinstance(element, etree._Element) and element.sourceline:
            best = element.sourceline
    return best

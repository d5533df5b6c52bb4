"""Identifiers masked in what the console shows (docs/security.md: national IDs, names and
phone numbers never in listings). The console shows a message's content to operators so
they can see what the sender sent, but with those three masked, by the helpers the logs
and the patient index already use: ``adapter.logs.redact_numbers`` (IDs and phones by
pattern) and ``mask_national_id`` (first 6, last 4), names reduced to their first
character."""

from __future__ import annotations

import re
from typing import Any

from adapter.identity.national_id import mask_national_id
from adapter.logs import redact_numbers

# HL7 v2 fields holding person names (XPN / XCN), by segment: masked to first characters
NAME_FIELDS = {
    "PID": {5, 6, 9},
    "NK1": {2},
    "MRG": {7},
    "GT1": {3},
    "IN1": {16},
    "IN2": {7},
}
_XML_NAME = re.compile(
    r"(<(?:[\w.-]+:)?(?:name|given|family|姓名|患者姓名|xm)\b[^>]*>)([^<]+)(</)", re.IGNORECASE
)
_XML_NAME_ATTR = re.compile(r"""(\b(?:name|姓名)\s*=\s*["'])([^"']+)(["'])""")
_JSON_NAME = re.compile(
    r"""("(?:name|family|given|text|姓名|patient_name|xm)"\s*:\s*")([^"]*)(")"""
)


def mask_name(name: str) -> str:
    """张三丰 -> 张**; each part of an HL7 / FHIR name the same way."""
    name = name.strip()
    return name[:1] + "*" * (len(name) - 1) if name else ""


def _mask_hl7_name(field: str, component: str, repetition: str) -> str:
    out = []
    for rep in field.split(repetition):
        parts = rep.split(component)
        # family name: its first character; given and middle names: wholly
        masked = [mask_name(parts[0]), *("*" * len(p) for p in parts[1:3]), *parts[3:]]
        out.append(component.join(masked))
    return repetition.join(out)


def mask_hl7_line(line: str, field_sep: str, component: str, repetition: str) -> str:
    """One segment with its name fields masked and IDs / phones masked anywhere."""
    if len(line) < 3:
        return redact_numbers(line)
    fields = line.split(field_sep)
    names = NAME_FIELDS.get(fields[0], set())
    for index in names:
        if index < len(fields) and fields[index]:
            fields[index] = _mask_hl7_name(fields[index], component, repetition)
    return redact_numbers(field_sep.join(fields))


def mask_markup(text: str) -> str:
    """XML (CDA, vendor exports) or JSON text: name elements, attributes and keys masked,
    IDs and phones masked anywhere. Line breaks are kept (highlights are by line)."""
    text = _XML_NAME.sub(lambda m: m.group(1) + mask_name(m.group(2)) + m.group(3), text)
    text = _XML_NAME_ATTR.sub(lambda m: m.group(1) + mask_name(m.group(2)) + m.group(3), text)
    text = _JSON_NAME.sub(lambda m: m.group(1) + mask_name(m.group(2)) + m.group(3), text)
    return redact_numbers(text)


CSV_NAME_COLUMNS = frozenset({"姓名", "患者姓名", "病人姓名", "name", "patient_name", "xm"})


def mask_csv(text: str) -> str:
    """CSV: the cells of name columns (by header) masked, IDs and phones anywhere. Cells are
    split on the header's delimiter (a quoted delimiter inside a cell is not understood:
    such a row keeps its IDs and phones masked, its name maybe not)."""
    lines = text.splitlines()
    header = next((i for i, line in enumerate(lines) if line.strip()), None)
    if header is None:
        return redact_numbers(text)
    delimiter = max(",\t;|", key=lines[header].count)
    names = {
        i
        for i, cell in enumerate(lines[header].split(delimiter))
        if cell.strip().strip('"').lower() in CSV_NAME_COLUMNS
    }
    out = lines[: header + 1]
    for line in lines[header + 1 :]:
        cells = line.split(delimiter)
        out.append(delimiter.join(mask_name(c) if i in names else c for i, c in enumerate(cells)))
    return redact_numbers("\n".join(out))


def masked_patient(body: dict[str, Any] | None) -> str:
    """A Patient resource as one listing cell: masked name and masked national ID."""
    if not body:
        return ""
    names = body.get("name") or []
    shown = ""
    if names:
        first = names[0]
        text = first.get("text") or "".join(
            [first.get("family") or "", *(first.get("given") or [])]
        )
        shown = mask_name(text)
    for identifier in body.get("identifier") or []:
        value = str(identifier.get("value") or "")
        if len(value) in (15, 18) and value[:17].isdigit():
            return f"{shown} {mask_national_id(value)}".strip()
    return shown

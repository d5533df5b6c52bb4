"""``xhtml(text)``: a FHIR Narrative ``div`` from plain text (registered into FUNCTIONS).

FHIR narrative is XHTML: text taken from a document must be escaped, never pasted in."""

from __future__ import annotations

from html import escape
from typing import Any

from adapter.mapping.functions.registry import FunctionContext, transform
from adapter.mapping.values import text

_XHTML = "http://www.w3.org/1999/xhtml"


@transform("xhtml")
def xhtml(ev: FunctionContext, value: Any) -> str | None:
    """``<div xmlns="...xhtml">`` with one ``<p>`` per non-blank line, special characters
    escaped; nothing for blank text."""
    lines = [line.strip() for line in text(value).splitlines() if line.strip()]
    if not lines:
        return None
    paragraphs = "".join(f"<p>{escape(line, quote=False)}</p>" for line in lines)
    return f'<div xmlns="{_XHTML}">{paragraphs}</div>'

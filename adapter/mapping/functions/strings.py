"""Text: ``text``, ``concat``, ``join``, ``trim``, ``squash``, ``upper``, units as written,
prefixes."""

from __future__ import annotations

import re
from typing import Any

from adapter.mapping.functions.registry import FunctionContext, transform
from adapter.mapping.values import TEXT_DECIDES, text


@transform("text")
def text_(ev: FunctionContext, value: Any) -> str:
    return text(value)


@transform("concat")
def concat(ev: FunctionContext, *values: Any) -> str:
    # a loop, not a generator (its every step resumed from C, decision 0144)
    texts: list[str] = []
    for v in values:
        texts.append(text(v))
    return "".join(texts)


@transform("join")
def join(ev: FunctionContext, separator: Any, *values: Any) -> str:
    """The non-blank texts joined; a list argument (a ``let`` built with ``each``, such as the
    findings lines of an exam report) gives each of its items, not only the first."""
    # loops, not generators: a generator is a function made per call (decision 0126)
    texts: list[str] = []
    for v in values:
        kind = type(v)  # a text or a ReadNode told without isinstance's miss (decision 0154)
        if kind is list or (kind is not str and kind not in TEXT_DECIDES and isinstance(v, list)):
            for item in v:
                t = (
                    item
                    if type(item) is str
                    else item.text
                    if type(item) in TEXT_DECIDES
                    else text(item)
                ).strip()
                if t:
                    texts.append(t)
        else:
            t = (v if kind is str else v.text if kind in TEXT_DECIDES else text(v)).strip()
            if t:
                texts.append(t)
    return (
        separator
        if type(separator) is str
        else separator.text
        if type(separator) in TEXT_DECIDES
        else text(separator)
    ).join(texts)


@transform("trim")
def trim(ev: FunctionContext, value: Any) -> str:
    return (
        value if type(value) is str else value.text if type(value) in TEXT_DECIDES else text(value)
    ).strip()


_SPACES = re.compile(r"\s+")


@transform("squash")
def squash(ev: FunctionContext, value: Any) -> str:
    """Every run of spaces, tabs and line breaks one space, trimmed: an element's text that
    a pretty-printed message wraps over several indented lines."""
    return _SPACES.sub(" ", text(value)).strip()


@transform("join_repetitions")
def join_repetitions(ev: FunctionContext, value: Any, separator: Any = "\n") -> str:
    """All repetitions of a field as one text (NTE-3, TX results written over several lines)."""
    if not hasattr(value, "repetition_texts"):
        return text(value)
    kept: list[str] = []  # a loop, not a generator (decision 0144)
    for r in value.repetition_texts():
        if r.strip():
            kept.append(r)
    return text(separator).join(kept)


_EXPONENT_TAIL = re.compile(r"^\d+\s*/")


@transform("unit_as_written")
def unit_as_written(ev: FunctionContext, value: Any) -> str | None:
    """The unit of OBX-6 as the lab wrote it. Many LIS write "10^9/L" without escaping the
    caret, which HL7 then reads as two components ("10" and "9/L"); those are joined back.
    A unit coded properly (code^text^system) gives its code."""
    first_part = text(value).strip()
    child = getattr(value, "child", None)
    if child is None or getattr(value, "comp", None) is not None:
        return first_part or None
    # ``text()``, not the ``text`` property: a position's property function is called at
    # once, where reading the property is a call from C into a new interpreter loop (0149)
    second = text(child(2)).strip()
    third = text(child(3)).strip()
    if not third and first_part.endswith("10") and _EXPONENT_TAIL.match(second):
        return f"{first_part}^{second}"
    return first_part or None


@transform("strip_prefix")
def strip_prefix(ev: FunctionContext, value: Any, *prefixes: Any) -> str | None:
    """The text without the first of ``prefixes`` it starts with ("tel:+1 555" -> "+1 555");
    the text unchanged when it starts with none of them."""
    raw = text(value).strip()
    for prefix in prefixes:
        wanted = text(prefix)
        if wanted and raw.startswith(wanted):
            return raw[len(wanted) :].strip() or None
    return raw or None


@transform("starts_with")
def starts_with(ev: FunctionContext, value: Any, prefix: Any) -> bool:
    return text(value).strip().startswith(text(prefix))


@transform("upper")
def upper(ev: FunctionContext, value: Any) -> str:
    return (
        value if type(value) is str else value.text if type(value) in TEXT_DECIDES else text(value)
    ).upper()

"""Choice and logic: ``first``, ``eq``, ``one_of``, ``exists``, ``when``, ``all`` ...

``first``, ``when``, ``all`` and ``any`` are also evaluated lazily by the engine
(``adapter.mapping.evaluation``): these are their plain forms, for values already read."""

from __future__ import annotations

import re
from typing import Any

from adapter.mapping.functions.registry import FunctionContext, transform
from adapter.mapping.values import (
    TEXT_DECIDES,
    TEXT_FIRST,
    TEXT_READERS,
    is_empty,
    is_position_type,
    is_position_without_text,
    text,
)

_CONTAINERS = (dict, list)  # a tuple: ``dict | list`` would make a union object per test


@transform("first")
def first(ev: FunctionContext, *values: Any) -> Any:
    """The first argument that is not empty."""
    return next((v for v in values if not is_empty(v)), None)


@transform("eq")
def eq(ev: FunctionContext, a: Any, b: Any) -> bool:
    if type(a) is str and type(b) is str:  # text() of a str is itself
        return a.strip() == b.strip()
    if type(b) is str and type(a) in TEXT_DECIDES:  # a position read, a literal (decision 0126)
        return a.text.strip() == b.strip()  # type: ignore[no-any-return]
    if a is None and type(b) is str:  # nothing found, a literal: text(None) is "" (0144)
        return not b.strip()
    return text(a).strip() == text(b).strip()


def eq_text(ev: FunctionContext, a: Any, b: str) -> bool:
    """``eq(a, 'text')`` with a literal text, given stripped (once, when the expression is
    compiled): the generated code calls it (decision 0149); each case as ``eq`` has it."""
    kind = type(a)
    if kind is str:
        return a.strip() == b
    if kind in TEXT_DECIDES:
        return a.text.strip() == b  # type: ignore[no-any-return]
    if a is None:
        return not b
    return text(a).strip() == b


@transform("ne")
def ne(ev: FunctionContext, a: Any, b: Any) -> bool:
    return not eq(ev, a, b)


@transform("one_of")
def one_of(ev: FunctionContext, value: Any, *options: Any) -> bool:
    kind = type(value)  # text(value), its first cases inline (decision 0126)
    if kind is str:
        wanted = value.strip().casefold()
    elif kind in TEXT_DECIDES:
        wanted = value.text.strip().casefold()
    else:
        wanted = text(value).strip().casefold()
    for option in options:  # a loop, not any() over a generator: options are mostly texts
        if wanted == (option if type(option) is str else text(option)).strip().casefold():
            return True
    return False


def one_of_texts(ev: FunctionContext, value: Any, options: frozenset[str]) -> bool:
    """``one_of(value, 'A', 'B' ...)`` whose options are all literal texts, given as the set
    of their stripped, casefolded forms (found once, when the expression is compiled): the
    generated code calls it (decision 0149), one set look-up instead of a loop that strips
    and casefolds every option at every call."""
    kind = type(value)  # as one_of reads it
    if kind is str:
        wanted = value.strip().casefold()
    elif kind in TEXT_DECIDES:
        wanted = value.text.strip().casefold()
    else:
        wanted = text(value).strip().casefold()
    return wanted in options


@transform("exists")
def exists(ev: FunctionContext, *values: Any) -> bool:
    if len(values) == 1:  # what the loops below say of one text or one source position
        return exists_one(ev, values[0])
    return _exists_any(values)


def exists_one(ev: FunctionContext, v: Any) -> bool:
    """``exists(v)`` of one value, without the tuple of arguments: the generated code
    calls it for ``exists(x)`` and ``empty(x)`` (decision 0144)."""
    kind = type(v)
    if kind is str:
        return v.strip() != ""
    if v is None:
        return False
    # TEXT_DECIDES: not empty and text not blank is text not blank; TEXT_FIRST: its
    # text is what is_empty reads first, so a blank text decides (decision 0121)
    if kind in TEXT_DECIDES:
        return v.text.strip() != ""  # type: ignore[no-any-return]
    if kind in TEXT_FIRST:  # its text property's function called at once (0144)
        reader = TEXT_READERS.get(kind)
        as_text = reader(v) if reader is not None else v.text
        return as_text.strip() != ""  # type: ignore[no-any-return]
    if is_position_type(kind):
        as_text = getattr(v, "text", None)
        if not isinstance(as_text, str):
            return True  # a whole segment: there
        check = getattr(v, "is_empty", None)
        return not (check and check()) and as_text.strip() != ""
    return _exists_any((v,))


def _exists_any(values: tuple[Any, ...]) -> bool:
    # loops rather than any() over generators: called for most conditions of a template
    for v in values:
        if is_position_without_text(v):
            return True
    for v in values:
        if isinstance(v, _CONTAINERS):
            if not is_empty(v):
                return True
        elif not is_empty(v) and text(v).strip() != "":
            return True
    return False


@transform("empty")
def empty(ev: FunctionContext, value: Any) -> bool:
    return not exists_one(ev, value)


@transform("not")
def not_(ev: FunctionContext, value: Any) -> bool:
    return not _truthy(value)


@transform("all")
def all_(ev: FunctionContext, *values: Any) -> bool:
    return all(_truthy(v) for v in values)


@transform("any")
def any_(ev: FunctionContext, *values: Any) -> bool:
    return any(_truthy(v) for v in values)


@transform("matches")
def matches(ev: FunctionContext, value: Any, pattern: Any) -> bool:
    return re.fullmatch(text(pattern), text(value).strip()) is not None


def _truthy(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return exists_one(None, value)  # type: ignore[arg-type]


@transform("when")
def when(ev: FunctionContext, condition: Any, value: Any) -> Any:
    """``value`` when the condition holds, else nothing."""
    return value if _truthy(condition) else None

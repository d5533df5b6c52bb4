"""A search's pre-read built once per SHAPE, its values bound (decision 0142).

The pre-read of a name search (``name=张伟``, adapter/store/search_preread.py) is a tree of
~300 SQLAlchemy objects: building it cost ~0.7 ms of client CPU a search and SQLAlchemy's
cache key of the fresh tree ~0.4 ms more, where the statement's text is the same for every
value. Searches of one SHAPE (one type; the same string criteria, modifiers and number of
values; the same sort, cap and page) share ONE pre-read built with a ``Slot`` for each
value: ``search._value`` puts named bind parameters where a value's text would go
(``condition``), and each search binds its own values (``binds``). The statement object is
kept, so SQLAlchemy keys it once (the key is memoised on the object) and finds its compiled
form in the engine's cache.

Only PostgreSQL's searches whose criteria are all plain string criteria (a prefix,
``:exact``, ``:contains``; no chain, no ``:missing``/``:not``) take this path, and only
with values shorter than ``index_keys.KEY_CHARS`` (a longer value compares a cut key and
the whole text: another tree). The rest build their pre-read per search as before; SQLite's
pre-read is its parameters' member alone (already built once per type).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Sequence
from dataclasses import replace
from typing import Any, cast

from sqlalchemy import ColumnElement, FromClause, and_, bindparam, func, or_

from adapter.fhir.index_values import normalize_text
from adapter.fhir.search_query import Criterion, HasCriterion
from adapter.fhir.search_results import SortKey
from adapter.store.index_keys import KEY_CHARS, like_escape
from adapter.store.search_preread import Found, PreRead

_MODIFIERS = (None, "exact", "contains")
_ESCAPE = "\\"  # index_keys' LIKE escape
_SHAPES = 512  # at most this many shapes kept (the cache is emptied when full)


class Slot:
    """A criterion's value in a shape's pre-read: the name of its bind parameters."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name


def condition(si: FromClause, modifier: str | None, slot: Slot) -> ColumnElement[bool]:
    """``search._value``'s string condition with the value as named bind parameters: the
    same tree ``index_keys`` builds for a value shorter than ``KEY_CHARS`` (``binds``
    gives the values)."""
    text = bindparam(slot.name)
    if modifier == "exact":  # the normalised key narrows the range, the text decides
        return and_(si.c.value_norm == bindparam(f"{slot.name}_n"), si.c.value == text)
    if modifier == "contains":
        return or_(
            si.c.value_norm.like(text, escape=_ESCAPE),
            and_(
                func.length(si.c.value_norm) == KEY_CHARS,
                si.c.value_norm_full.like(text, escape=_ESCAPE),
            ),
        )
    return si.c.value_norm.like(text, escape=_ESCAPE)


def _value_binds(name: str, modifier: str | None, value: str) -> dict[str, str] | None:
    """The values of ``condition``'s parameters for ``value`` (None: too long for it)."""
    if len(value) >= KEY_CHARS:
        return None
    if modifier == "exact":
        norm = normalize_text(value)
        return None if len(norm) >= KEY_CHARS else {f"{name}_n": norm, name: value}
    if modifier == "contains":
        return {name: "%" + like_escape(value) + "%"}
    return {name: like_escape(value) + "%"}


def _shape(
    types: Sequence[str],
    criteria: Sequence[Criterion | HasCriterion],
    sort: tuple[SortKey, ...],
    rest: tuple[Hashable, ...],
) -> tuple[Hashable, ...] | None:
    """The search's shape (what its pre-read's tree depends on), None when it has none."""
    if len(types) != 1:
        return None
    parts = []
    for c in criteria:
        if (
            not isinstance(c, Criterion)
            or c.chain is not None
            or c.param.column
            or c.param.type != "string"
            or c.modifier not in _MODIFIERS
            or not c.values
        ):
            return None
        parts.append((c.param, c.modifier, len(c.values)))
    return (types[0], tuple(parts), sort, rest)


def binds(criteria: Sequence[Criterion | HasCriterion]) -> dict[str, str] | None:
    """Every value's bind parameters (``Slot`` ``v<criterion>_<value>``), None when a
    value is not a short text."""
    out: dict[str, str] = {}
    for i, c in enumerate(criteria):
        for j, value in enumerate(cast(Criterion, c).values):
            if not isinstance(value, str):
                return None
            one = _value_binds(f"v{i}_{j}", cast(Criterion, c).modifier, value)
            if one is None:
                return None
            out.update(one)
    return out


class Shaped:
    """A shape's pre-read with one search's values (``PreRead.run``'s stand-in)."""

    __slots__ = ("_binds", "_kept", "_pre", "_renamed")

    def __init__(
        self,
        pre: PreRead,
        values: dict[str, str],
        renamed: dict[int, int],
        kept: tuple[Criterion, ...],
    ) -> None:
        self._pre = pre
        self._binds = values
        self._renamed = renamed
        self._kept = kept  # the slotted criteria whose ids ``renamed`` replaces

    def run(self, session: Any) -> Found:
        return self._pre.run(session, self._binds, self._renamed)


_cache: dict[tuple[Hashable, ...], tuple[PreRead, tuple[Criterion, ...]]] = {}
_lock = threading.Lock()


def shaped(
    types: Sequence[str],
    criteria: Sequence[Criterion | HasCriterion],
    sort: tuple[SortKey, ...],
    rest: tuple[Hashable, ...],
    build: Callable[[Sequence[Criterion | HasCriterion]], PreRead],
) -> Shaped | None:
    """The search's pre-read from its shape's (built by ``build`` with ``Slot`` values
    the first time), None when the search has no shape (the caller builds its own).
    ``rest``: what else the tree depends on (the cap, whether a page is read, ...)."""
    key = _shape(types, criteria, sort, rest)
    if key is None:
        return None
    values = binds(criteria)
    if values is None:
        return None
    entry = _cache.get(key)
    if entry is None:
        slotted = tuple(_slotted(i, cast(Criterion, c)) for i, c in enumerate(criteria))
        entry = (build(slotted), slotted)
        entry[0].statement()  # built before it is shared (no thread builds it twice)
        with _lock:
            if len(_cache) >= _SHAPES:
                _cache.clear()
            entry = _cache.setdefault(key, entry)
    pre, slotted = entry
    # the answers' keys hold the criteria's ids (``search._token_key``): the slotted
    # criteria's become this search's (kept alive with it: no other object has their ids)
    renamed = {id(s): id(c) for s, c in zip(slotted, criteria, strict=True)}
    return Shaped(pre, values, renamed, slotted)


def _slotted(i: int, criterion: Criterion) -> Criterion:
    """``criterion`` with a ``Slot`` for each value (``v<i>_<j>``)."""
    slots: Any = tuple(Slot(f"v{i}_{j}") for j in range(len(criterion.values)))
    return replace(criterion, values=slots)


def clear() -> None:
    """Forget every shape (tests)."""
    with _lock:
        _cache.clear()


def kept() -> list[tuple[tuple[Hashable, ...], Any]]:
    """Each shape kept and its statement (tests)."""
    with _lock:
        return [(key, pre.statement()) for key, (pre, _) in _cache.items()]

"""SQLite: a batch's search index rows in the driver's form in one pass (decision 0120).

``_insert_index_tuples`` (adapter/store/resources.py) turns the store's index rows
(``IndexRow``: names where ids go, a reference as text or as its target's key) into the
table's rows: each rebuilt in column order, numbered among its resource's rows, then
transposed, bind-processed a column at a time and transposed back (fast_insert). For the
~75 rows of a lab message those were five tuple passes, about 3 µs a row. On SQLite the
same values are made here in one pass: the row's number, the dates' bind processor once
per distinct instant, ``value_number``'s processor, the ids and the reference's target,
each row built once, in the INSERT's order. The values, and so the stored rows, are those
of the general path (tests/integration/test_index_rows_sqlite.py compares them).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from itertools import compress
from operator import itemgetter
from typing import Any, Final, NamedTuple

from sqlalchemy import Table
from sqlalchemy.engine import Dialect

from adapter.store.fast_insert import plan_of

# the positions of the INSERT's processed columns: row_id, resource_key, value_date_start,
# value_date_end, value_number, ... (``("row_id", *resources._INDEX_COLUMNS)``)
_START, _END, _NUMBER = 2, 3, 4


class IndexInsert(NamedTuple):
    """The compiled INSERT of search_index rows and its two bind processors."""

    sql: str
    when: Callable[[Any], Any]  # the date columns' (an aware datetime to the stored form)
    number: Callable[[Any], Any]  # value_number's


_FOUND: dict[tuple[str, str, tuple[str, ...]], IndexInsert | None] = {}


def index_insert(table: Table, dialect: Dialect, keys: tuple[str, ...]) -> IndexInsert | None:
    """The one-pass form's INSERT for ``keys`` (``row_id`` and the index columns, in the
    table's order); None where the compiled statement's columns or processors are not the
    ones this module writes for (then the general path runs)."""
    cache = (dialect.name, table.name, keys)
    if cache in _FOUND:
        return _FOUND[cache]
    found = None
    plan = plan_of(table, dialect, keys)
    if plan is not None and plan.order == keys:
        by_place = {at: (process, skip_none) for at, process, skip_none, _ in plan.processors}
        start, end = by_place.get(_START), by_place.get(_END)
        number = by_place.get(_NUMBER)
        if (
            set(by_place) == {_START, _END, _NUMBER}
            and start is not None
            and end is not None
            and number is not None
            and start[0] is end[0]  # one datetime processor for both date columns
            and start[1]
            and number[1]  # None kept as None: not called for it
        ):
            found = IndexInsert(plan.sql, start[0], number[0])
    _FOUND[cache] = found
    return found


# an ``IndexRow``'s dates
_STARTS: Final = itemgetter(8)
_ENDS: Final = itemgetter(9)

# (the INSERT, which of its values are bound) -> the INSERT with NULL for the others
_NULLED: dict[tuple[str, tuple[bool, ...]], str] = {}
_NULLED_MAX: Final = 4096


def without_nulls(
    sql: str, rows: Sequence[tuple[Any, ...]], kept: Sequence[tuple[bool, ...]]
) -> list[tuple[str, list[tuple[Any, ...]]]]:
    """``rows`` grouped by which of their values are not None (``kept``, one a row), each
    group with ``sql`` writing NULL in the other places and its rows without those values
    (groups in the order first seen). An index row has about ten empty columns of sixteen,
    and Python's sqlite3 asks its adapter registry about each None it binds (about 1,200
    instructions a value, even with decision 0140's adapter); a NULL in the statement
    costs nothing a row. The stored rows are the same."""
    groups: Groups = {}
    for row, bound in zip(rows, kept, strict=True):
        add_grouped(groups, bound, row)
    return grouped(sql, groups)


# which values of a row are bound -> (what takes them from a row, the rows' bound values)
Groups = dict[tuple[bool, ...], tuple[Callable[[Any], Any], list[tuple[Any, ...]]]]


def add_grouped(groups: Groups, bound: tuple[bool, ...], row: tuple[Any, ...]) -> None:
    """``row``'s bound values (a tuple made in C) into the group of rows bound alike."""
    group = groups.get(bound)
    if group is None:
        groups[bound] = group = (_taking(bound), [])
    group[1].append(group[0](row))


def grouped(sql: str, groups: Groups) -> list[tuple[str, list[tuple[Any, ...]]]]:
    """``without_nulls``' answer from its groups (``driver_index_rows(groups=...)`` fills
    them as it builds the rows, without a list of rows and one of their bound places)."""
    return [(_nulled(sql, bound), group) for bound, (_, group) in groups.items()]


# which values of a row are bound -> an ``itemgetter`` of them (a tuple, even of one)
_TAKING: dict[tuple[bool, ...], Callable[[Any], Any]] = {}


def _taking(bound: tuple[bool, ...]) -> Callable[[Any], Any]:
    """A function giving the values of a row in the places ``bound`` marks, as a tuple."""
    found = _TAKING.get(bound)
    if found is None:
        places = list(compress(range(len(bound)), bound))
        if len(places) == 1:  # itemgetter of one place gives the value, not a tuple
            (place,) = places
            found = lambda row: (row[place],)  # noqa: E731
        else:
            found = itemgetter(*places)
        if len(_TAKING) < _NULLED_MAX:
            _TAKING[bound] = found
    return found


def _nulled(sql: str, kept: tuple[bool, ...]) -> str:
    """``sql`` (an INSERT ... VALUES (?, ?, ...)) with NULL for the values not ``kept``."""
    found = _NULLED.get((sql, kept))
    if found is None:
        head, values = sql.rsplit("VALUES", 1)
        parts = values.split("?")
        assert len(parts) == len(kept) + 1, "one placeholder a column"
        found = head + "VALUES" + parts[0]
        for part, bound in zip(parts[1:], kept, strict=True):
            found += ("?" if bound else "NULL") + part
        if len(_NULLED) < _NULLED_MAX:
            _NULLED[(sql, kept)] = found
    return found


# INSERTs of several rows each (decision 0147): adapter/store/wide_insert.py


def driver_index_rows(
    rows: Sequence[tuple[Any, ...]],
    insert: IndexInsert,
    params: dict[tuple[str, str, str], int],
    systems: dict[str | None, int | None],
    kinds: dict[str, int],
    targets: dict[Any, int],
    *,
    transient: bool,
    kept: list[tuple[bool, ...]] | None = None,
    groups: Groups | None = None,
    apart: Collection[int] = (),
) -> list[tuple[Any, ...]]:
    """``rows`` (``IndexRow``: type, key, param, kind, system, code, value, value_norm,
    date start, date end, number or an identifier type's system text, reference as text or
    target key, code_full, value_norm_full, reference_full) as the driver takes them.
    ``kept``: given, each row's values that are not None are appended to it (True in
    their places: ``without_nulls``), told from the values as they are here, cheaper than
    a pass over the rows' tuples. ``groups``: given, each row goes into it as
    ``without_nulls`` would group it (and nothing is returned, nor put in ``kept``), but
    for the rows of the resources ``apart`` (keys), returned and put in ``kept`` (which
    must then be given): those whose stored rows they replace (``keep_stored``), decision
    0147."""
    when = insert.when
    instants = set(map(_STARTS, rows))  # in C
    instants.update(map(_ENDS, rows))
    instants.discard(None)
    at: dict[Any, Any] = {value: when(value) for value in instants}  # once per instant
    at[None] = None
    number = insert.number
    numbers: dict[int, int] = {}  # resource key -> its rows numbered so far
    out = []
    append = out.append
    for r in rows:
        (
            rtype, rkey, param, kind, system, code, value, norm, begins, ends,
            value_number, reference, code_full, norm_full, reference_full,
        ) = r  # fmt: skip
        n = numbers.get(rkey, 0)
        numbers[rkey] = n + 1
        if value_number is not None:  # an identifier's type: its system's id (``_typed``)
            value_number = number(
                systems[value_number] if value_number.__class__ is str else value_number
            )
        target = None
        if reference is not None:
            if reference.__class__ is int:  # named by key already (``_named_by_key``)
                target, reference = reference, None
            else:
                target = targets.get(reference)
                if target is not None:  # the target's key instead of the text
                    reference = None
        start, end, system_id = at[begins], at[ends], systems[system]
        row = (
            -1 - n if transient else n, rkey, start, end, value_number, target,
            params[rtype, param, kind], system_id, kinds[kind], code, value, norm,
            reference, code_full, norm_full, reference_full,
        )  # fmt: skip
        aside = groups is None or rkey in apart
        if aside:
            append(row)
            if kept is None:
                continue
        # the row's number, key, parameter and kind are never None
        bound = (
            True, True, start is not None, end is not None, value_number is not None,
            target is not None, True, system_id is not None, True, code is not None,
            value is not None, norm is not None, reference is not None,
            code_full is not None, norm_full is not None, reference_full is not None,
        )  # fmt: skip
        if aside:
            kept.append(bound)  # type: ignore[union-attr]
            continue
        # ``add_grouped``, inline (a call a row less)
        group = groups.get(bound)  # type: ignore[union-attr]
        if group is None:
            groups[bound] = group = (_taking(bound), [])  # type: ignore[index]
        group[1].append(group[0](row))
    return out

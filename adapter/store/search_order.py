"""``_sort``: the ORDER BY of a search.

``_id`` and ``_lastUpdated`` are columns of the resource. Every other parameter sorts by
its index rows: a correlated ``min`` (ascending) or ``max`` (descending) over the rows of
that parameter, so a resource with several values sorts by the first / last of them, as
FHIR asks. A date sorts by the start of its range ascending and by the end descending
(``_sort=-date``: the latest clinical time first). Resources without a value come last
either way. Ties are broken by last change (newest first) and then id, so paging is stable.

``_id`` and ``_lastUpdated`` are never null: no ``NULLS LAST`` on them, which would keep
PostgreSQL from reading the (type, last_updated, id) index in order (``_sort=-_lastUpdated``
on a whole type: a scan and a sort of every row instead of the first rows of the index).

A search of one type whose first sort key is an index parameter is read in two parts
(``leading_rows``, ``without_value``; decision 0035): the resources with a value, through
the one index row that places each of them (its latest / earliest value, ties by row id),
ordered by that row's column, so that the database can read the kind's index in order
and stop after the page (``_sort=-date`` on a whole type reads the first rows of
``ix_search_index_date_end`` instead of computing the latest date of every resource and
sorting them all); then, when the page is not full, the resources without a value.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import ColumnElement, FromClause, and_, exists, func, literal, or_, select

from adapter.fhir.search_results import SortKey
from adapter.store.index_params import Ids, ParamIds, rows_in
from adapter.store.models import Resource, SearchIndex

_si = SearchIndex.__table__

# parameter type -> (column ascending, column descending)
_SORT_COLUMNS = {
    "date": ("value_date_start", "value_date_end"),
    "token": ("code", "code"),
    "uri": ("code", "code"),
    "string": ("value_norm", "value_norm"),
    "quantity": ("value_number", "value_number"),
    "reference": ("reference", "reference"),  # the target's ``Type/id``: ``_sort_value``
}
_r = Resource.__table__


def _sort_value(si: FromClause, kind: str, descending: bool) -> Any:
    """The value a row sorts by: its column, or for a reference the text ``Type/id`` (a row
    naming its target by key, decision 0080, reads it from the target's resource row)."""
    column = si.c[_SORT_COLUMNS[kind][1 if descending else 0]]
    if kind != "reference":
        return column
    target = _r.alias()
    text = (
        select(target.c.resource_type + literal("/") + target.c.id)
        .where(target.c.resource_key == si.c.target_key)
        .correlate_except(target)  # to ``si`` at whatever level it is in the statement
    )
    return func.coalesce(column, text.scalar_subquery())


_NOT_NULL = ("_id", "_lastUpdated")
_OWN_COLUMNS = ("_lastUpdated", "_id", "_source")


def led_by_index(sort: tuple[SortKey, ...]) -> bool:
    """Whether the first sort key is read from the search index (not a resource column)."""
    return bool(sort) and sort[0].name not in _OWN_COLUMNS


def sort_ids(ids: ParamIds, rtype: str | None, sort: tuple[SortKey, ...]) -> tuple[Ids, ...]:
    """The parameter ids of each sort key's rows in a search of ``rtype`` (None: several
    types), read by the search (``ParamIds``); none for the resource's own columns."""
    return tuple(
        () if key.name in _OWN_COLUMNS else ids.of(rtype, key.param.row_params, key.param.type)
        for key in sort
    )


@dataclass(frozen=True, slots=True)
class LeadingRows:
    """The index rows that place resources for the first sort key: ``joined`` is the
    resource table ``r`` joined to them, ``where`` keeps one row per resource (the latest
    value descending, the earliest ascending; the lowest row id among equal values), and
    ``order`` is the full ORDER BY (that row's column, then the other keys)."""

    joined: FromClause
    where: ColumnElement[bool]
    order: tuple[Any, ...]


# The clauses depend only on the sort keys, the table and the keys' ids (``sort_ids``); built
# once per shape they save the aliases' column copies on every search (about 1 ms of a
# patient's page; decision 0045)
@lru_cache(maxsize=512)
def leading_rows(sort: tuple[SortKey, ...], r: FromClause, keyed: tuple[Ids, ...]) -> LeadingRows:
    """The leading rows of a search of one type (the rows of its parameter are then one
    ``param_id``, the first column of the kind's index, read in order); ``keyed``: the sort
    keys' ids (``sort_ids``)."""
    key = sort[0]
    kind = key.param.type
    row, other = _si.alias("sort_row"), _si.alias("sort_other")
    if kind == "reference":  # the targets' texts joined, not one subquery per row and use
        value, rows = _joined_reference(row)
        rival, others = _joined_reference(other)
    else:
        value, rows = _sort_value(row, kind, key.descending), row
        rival, others = _sort_value(other, kind, key.descending), other
    better = rival > value if key.descending else rival < value
    placed_higher = (
        select(other.c.resource_key)
        .select_from(others)
        .where(
            other.c.resource_key == row.c.resource_key,
            rows_in(other, keyed[0], kind),
            or_(better, and_(rival == value, other.c.row_id < row.c.row_id)),
        )
        .exists()
    )
    joined = r.join(rows, row.c.resource_key == r.c.resource_key)
    where = and_(rows_in(row, keyed[0], kind), value.is_not(None), ~placed_higher)
    first = value.desc() if key.descending else value.asc()
    return LeadingRows(joined, where, (first, *order_by(sort[1:], r, keyed[1:])))


def _joined_reference(si: FromClause) -> tuple[Any, FromClause]:
    """A reference row's ``Type/id`` and ``si`` left-joined to its target's resource row
    (a row naming its target by key, decision 0080)."""
    target = _r.alias()
    joined = si.outerjoin(target, target.c.resource_key == si.c.target_key)
    return func.coalesce(
        si.c.reference, target.c.resource_type + literal("/") + target.c.id
    ), joined


@lru_cache(maxsize=512)
def without_value(
    sort: tuple[SortKey, ...], r: FromClause, keyed: tuple[Ids, ...]
) -> tuple[ColumnElement[bool], tuple[Any, ...]]:
    """The resources with no value for the first sort key, and their ORDER BY."""
    key = sort[0]
    kind = key.param.type
    si = _si.alias("sort_none")
    column = si.c[_SORT_COLUMNS[kind][1 if key.descending else 0]]
    valued = column.is_not(None)
    if kind == "reference":  # or named by its key (decision 0080)
        valued = or_(valued, si.c.target_key.is_not(None))
    has_value = exists().where(
        si.c.resource_key == r.c.resource_key,
        rows_in(si, keyed[0], kind),
        valued,
    )
    return ~has_value, tuple(order_by(sort[1:], r, keyed[1:]))


def order_by(sort: tuple[SortKey, ...], r: FromClause, keyed: tuple[Ids, ...]) -> list[Any]:
    """The ORDER BY of a search; ``keyed``: the sort keys' ids (``sort_ids``)."""
    columns = {"_lastUpdated": r.c.last_updated, "_id": r.c.id, "_source": r.c.message_id}
    order: list[Any] = []
    for key, ids in zip(sort, keyed, strict=True):
        value = columns[key.name] if key.name in columns else _index_value(key, r, ids)
        ordered = value.desc() if key.descending else value.asc()
        order.append(ordered if key.name in _NOT_NULL else ordered.nulls_last())
    names = {k.name for k in sort}
    if "_lastUpdated" not in names:
        order.append(r.c.last_updated.desc())
    if "_id" not in names:
        order.append(r.c.id.asc())
    return order


def _index_value(key: SortKey, r: FromClause, ids: Ids) -> Any:
    si = _si.alias()
    kind = key.param.type
    column = _sort_value(si, kind, key.descending)
    pick = func.max if key.descending else func.min
    return (
        select(pick(column))
        .where(
            si.c.resource_key == r.c.resource_key,
            rows_in(si, ids, kind),
        )
        .scalar_subquery()
    )

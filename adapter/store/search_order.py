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

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from itertools import product
from typing import Any

from sqlalchemy import (
    ColumnElement,
    FromClause,
    Select,
    and_,
    exists,
    false,
    func,
    literal,
    or_,
    select,
    true,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.selectable import Join

from adapter.fhir.search_params import RESOURCES
from adapter.fhir.search_results import SortKey
from adapter.store.index_params import Ids, ParamIds, row_params, rows_in
from adapter.store.models import Resource, SearchIndex
from adapter.store.search_terms import reference_rows, refs_name, search_terms
from adapter.store.search_tokens import arrayed, token_rows

_si = SearchIndex.__table__


def _arrays(key: SortKey) -> bool:
    """Whether PostgreSQL keeps the sort parameter's values partly as arrays (decisions
    0088, 0103, 0114): a resource's rows are then read per resource, fenced
    (``_per_resource``)."""
    kind = key.param.type
    return kind in ("reference", "token") or arrayed(kind, key.param.row_params)


def _rows(key: SortKey, name: str | None = None) -> FromClause:
    """A new alias of the rows a sort by ``key`` reads: a reference's include the values
    PostgreSQL keeps as arrays (``reference_rows``, decision 0088)."""
    kind = key.param.type
    if kind == "token" or arrayed(kind, key.param.row_params):  # decisions 0103, 0114
        return token_rows(name)
    return reference_rows(name) if kind == "reference" else _si.alias(name)


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
def leading_rows(
    sort: tuple[SortKey, ...], r: FromClause, keyed: tuple[Ids, ...], terms: bool = False
) -> LeadingRows:
    """The leading rows of a search of one type (the rows of its parameter are then one
    ``param_id``, the first column of the kind's index, read in order); ``keyed``: the sort
    keys' ids (``sort_ids``). ``terms``: PostgreSQL's arrays (decision 0088): a reference's
    rows are read per resource (``_per_resource``)."""
    key = sort[0]
    kind = key.param.type
    row = _rows(key, "sort_row")
    if terms and _arrays(key):
        row = _per_resource(row, r, "sort_row_of")
    if kind == "reference":  # the targets' texts joined, not one subquery per row and use
        value, rows, _ = _joined_reference(row)
    else:
        value, rows = _sort_value(row, kind, key.descending), row
    joined = r.join(rows, row.c.resource_key == r.c.resource_key)
    where = and_(
        rows_in(row, keyed[0], kind),
        value.is_not(None),
        _placed(key, row, value, keyed[0], terms),
    )
    first = value.desc() if key.descending else value.asc()
    return LeadingRows(joined, where, (first, *order_by(sort[1:], r, keyed[1:])))


def _per_resource(rows: FromClause, r: FromClause, name: str) -> FromClause:
    """PostgreSQL (decision 0088): ``rows`` (``reference_rows``) of ``r``'s resource as a
    LATERAL subquery fenced by ``OFFSET 0``: the resource's key then reaches both tables'
    primary keys (joined, the arrays' part of the UNION would be unnested whole)."""
    return select(*rows.c).where(rows.c.resource_key == r.c.resource_key).offset(0).lateral(name)


def _placed(
    key: SortKey, row: FromClause, value: Any, ids: Ids, terms: bool = False
) -> ColumnElement[bool]:
    """``row`` (value ``value``) is the row that places its resource: no other row of the
    parameter has a better value (higher descending, lower ascending) or the same value and
    a lower row id. ``terms``: PostgreSQL's arrays, the probe fenced (``_per_resource``)."""
    kind = key.param.type
    other = _rows(key, "sort_other")
    own = [other]  # the subquery's own tables; it is correlated to every other one
    if kind == "reference":
        rival, others, target = _joined_reference(other)
        own.append(target)
    else:
        rival, others = _sort_value(other, kind, key.descending), other
    better = rival > value if key.descending else rival < value
    placed_higher = (
        select(other.c.resource_key)
        .select_from(others)
        .correlate_except(*own)
        .where(
            other.c.resource_key == row.c.resource_key,
            other.c.row_id != row.c.row_id,  # itself never places higher: not joined to its target
            rows_in(other, ids, kind, of_resource=True),
            or_(better, and_(rival == value, other.c.row_id < row.c.row_id)),
        )
    )
    if terms and _arrays(key):
        placed_higher = placed_higher.offset(0)
    return ~placed_higher.exists()


def _placed_by_target(key: SortKey, terms: FromClause, named: Any, ids: Ids) -> ColumnElement[bool]:
    """PostgreSQL's walk (decision 0088): the resource of ``terms`` (its array names the
    target ``named``) has no value of the parameter that sorts before ``named``, and no
    text row of the same value: a text row precedes an array's values (``reference_rows``'
    row numbers), so the text part places that resource. Another equal value of the array
    is the same target by another parameter: the same place."""
    other = reference_rows("sort_other")
    rival, others, target = _joined_reference(other)
    better = rival > named if key.descending else rival < named
    placed_higher = (
        select(other.c.resource_key)
        .select_from(others)
        .correlate_except(other, target)
        .where(
            other.c.resource_key == terms.c.resource_key,
            rows_in(other, ids, "reference", of_resource=True),
            or_(better, and_(rival == named, other.c.reference.is_not(None))),
        )
        .offset(0)  # a subplan: the key reaches the primary keys (``_per_resource``)
        .exists()
    )
    return ~placed_higher


def _joined_reference(si: FromClause) -> tuple[Any, FromClause, FromClause]:
    """A reference row's ``Type/id``, ``si`` left-joined to its target's resource row (a
    row naming its target by key, decision 0080), and that target's alias."""
    target = _r.alias()
    joined = si.outerjoin(target, target.c.resource_key == si.c.target_key)
    value = func.coalesce(si.c.reference, target.c.resource_type + literal("/") + target.c.id)
    return value, joined, target


def walk_types(rtype: str, key: SortKey) -> tuple[str, ...] | None:
    """The types the key rows of a reference sort key can name, when the store can say:
    every row parameter of it is narrow (R4 ``where(resolve() is Patient)``: only
    references to its targets are indexed, adapter/fhir/index_values.py), and only a type
    the store indexes can be a key (``resource_keys.local_target``). None: any type."""
    search = RESOURCES.get(rtype)
    if key.param.type != "reference" or search is None:
        return None
    types: set[str] = set()
    for name in row_params(rtype, key.param):
        param = search.params.get(name)
        if param is None or not param.narrow or not param.targets:
            return None
        types.update(t for t in param.targets if t in RESOURCES)
    return tuple(sorted(types))


@dataclass(frozen=True, slots=True)
class ReferenceWalk:
    """The leading rows of a sort led by a reference in two parts, each read in an index's
    order and stopped after a page (decision 0080, second part):

    * the rows that keep the text, in ``ix_search_index_reference``'s order;
    * the rows that name their target by key, driven from the targets in the order of the
      resource's primary key ``(resource_type, id)`` (``types``: the types they can name,
      ``walk_types``), each target probing ``ix_search_index_target``. That order is the
      ``Type/id`` texts' order only where texts compare by their bytes
      (adapter/store/collation.py): the caller's check.

    Each resource is placed by one row of one part (``_placed`` compares both forms), so a
    page is the first rows of the two parts merged by their value, then the other keys."""

    key: SortKey
    r: FromClause
    text_row: FromClause
    text_where: ColumnElement[bool]
    key_row: FromClause
    target: FromClause
    key_where: ColumnElement[bool]
    terms: tuple[tuple[Any, bool, bool], ...]  # the other keys: value, descending, nulls last
    types: tuple[str, ...]
    ids: Ids  # the key's parameter ids

    def text_part(self, where: list[ColumnElement[bool]], first: int) -> Select[Any]:
        """The ``first`` resources placed by a text row, in order."""
        value = self.text_row.c.reference
        return (
            select(self.r.c.resource_key, value.label("sort_value"))
            .select_from(
                self.r.join(self.text_row, self.text_row.c.resource_key == self.r.c.resource_key)
            )
            .where(*where, self.text_where)
            .order_by(_ordered(value, self.key.descending, False), *_terms_order(self.terms))
            .limit(first)
        )

    def key_part(self, where: list[ColumnElement[bool]], first: int, dialect: str) -> Select[Any]:
        """The ``first`` resources placed by a key row, in order: a nested loop from the
        targets in primary-key order that the database cannot turn around (PostgreSQL: a
        LATERAL subquery kept apart by ``OFFSET 0``; SQLite: ``CROSS JOIN``). A planner
        left free starts from the parameter's rows and sorts them all (PostgreSQL
        estimates 557 of 20,000: ``param_id``, ``kind`` and ``target_key IS NOT NULL``
        taken as independent; SQLite has no statistics)."""
        r, key_row, target = self.r, self.key_row, self.target
        named = target.c.resource_type + literal("/") + target.c.id
        walk = [
            _ordered(c, self.key.descending, False) for c in (target.c.resource_type, target.c.id)
        ]
        if dialect == "postgresql":
            # the target's referrers from the arrays' GIN index (decision 0088); placed by
            # it when no other value of the resource sorts before it
            values = [value.label(f"sort_then_{n}") for n, (value, _, _) in enumerate(self.terms)]
            terms = search_terms.alias("sort_key_row")
            ids = self.ids
            placed = _placed_by_target(self.key, terms, named, ids)
            rows = (
                select(r.c.resource_key, *values)
                .select_from(terms.join(r, r.c.resource_key == terms.c.resource_key))
                .where(refs_name(terms, ids, target.c.resource_key), *where, placed)
                .offset(0)
                .correlate(target)
                .lateral("sort_keyed")
            )
            then = [
                _ordered(rows.c[f"sort_then_{n}"], descending, last)
                for n, (_, descending, last) in enumerate(self.terms)
            ]
            return (
                select(rows.c.resource_key, named.label("sort_value"))
                .select_from(target.join(rows, true()))
                .where(self.of_types)
                .order_by(*walk, *then)
                .limit(first)
            )
        # SQLite reads the left side of a CROSS JOIN first
        joined = _CrossJoin(
            _CrossJoin(target, key_row, key_row.c.target_key == target.c.resource_key),
            r,
            r.c.resource_key == key_row.c.resource_key,
        )
        return (
            select(r.c.resource_key, named.label("sort_value"))
            .select_from(joined)
            .where(*where, self.of_types, self.key_where)
            .order_by(*walk, *_terms_order(self.terms))
            .limit(first)
        )

    @property
    def of_types(self) -> ColumnElement[bool]:
        types = self.types
        column = self.target.c.resource_type
        if not types:
            return false()
        return column == types[0] if len(types) == 1 else column.in_(types)


class _CrossJoin(Join):
    """An inner join; on SQLite ``CROSS JOIN``: its left side is the outer loop."""

    inherit_cache = True


@compiles(_CrossJoin, "sqlite")
def _sqlite_cross_join(join: _CrossJoin, compiler: Any, **kw: Any) -> str:
    linter = kw.pop("from_linter", None)
    if linter is not None:
        linter.edges.update(product(join.left._from_objects, join.right._from_objects))
    kw.pop("asfrom", None)
    left = join.left._compiler_dispatch(compiler, asfrom=True, from_linter=linter, **kw)
    right = join.right._compiler_dispatch(compiler, asfrom=True, from_linter=linter, **kw)
    on = join.onclause._compiler_dispatch(compiler, from_linter=linter, **kw)
    return f"{left} CROSS JOIN {right} ON {on}"


@lru_cache(maxsize=512)
def reference_walk(
    sort: tuple[SortKey, ...],
    r: FromClause,
    keyed: tuple[Ids, ...],
    types: tuple[str, ...],
    terms: bool = False,
) -> ReferenceWalk:
    """The two parts of a sort led by a reference (``ReferenceWalk``)."""
    key = sort[0]
    text_row = _si.alias("sort_row")  # the texts are rows of the table on every database
    text_where = and_(
        rows_in(text_row, keyed[0], "reference"),
        text_row.c.reference.is_not(None),
        _placed(key, text_row, text_row.c.reference, keyed[0], terms),
    )
    key_row, target = reference_rows("sort_key_row"), _r.alias("sort_target")
    named = target.c.resource_type + literal("/") + target.c.id
    key_where = and_(
        rows_in(key_row, keyed[0], "reference"),
        key_row.c.target_key.is_not(None),
        _placed(key, key_row, named, keyed[0], terms),
    )
    terms = tuple(_terms(sort[1:], r, keyed[1:]))
    return ReferenceWalk(
        key, r, text_row, text_where, key_row, target, key_where, terms, types, keyed[0]
    )


@lru_cache(maxsize=512)
def without_value(
    sort: tuple[SortKey, ...], r: FromClause, keyed: tuple[Ids, ...], terms: bool = False
) -> tuple[ColumnElement[bool], tuple[Any, ...]]:
    """The resources with no value for the first sort key, and their ORDER BY."""
    key = sort[0]
    kind = key.param.type
    si = _rows(key, "sort_none")
    column = si.c[_SORT_COLUMNS[kind][1 if key.descending else 0]]
    valued = column.is_not(None)
    if kind == "reference":  # or named by its key (decision 0080)
        valued = or_(valued, si.c.target_key.is_not(None))
    where = (
        si.c.resource_key == r.c.resource_key,
        rows_in(si, keyed[0], kind, of_resource=True),
        valued,
    )
    has_value = exists().where(*where)
    if terms and _arrays(key):  # a subplan (``_per_resource``)
        has_value = select(si.c.resource_key).where(*where).offset(0).exists()
    return ~has_value, tuple(order_by(sort[1:], r, keyed[1:]))


def order_by(sort: tuple[SortKey, ...], r: FromClause, keyed: tuple[Ids, ...]) -> list[Any]:
    """The ORDER BY of a search; ``keyed``: the sort keys' ids (``sort_ids``)."""
    return _terms_order(_terms(sort, r, keyed))


def _terms(
    sort: tuple[SortKey, ...], r: FromClause, keyed: tuple[Ids, ...]
) -> list[tuple[Any, bool, bool]]:
    """Each term of the ORDER BY: its value, whether descending, whether nulls last (the
    sort keys, then the last change, newest first, and the id)."""
    columns = {"_lastUpdated": r.c.last_updated, "_id": r.c.id, "_source": r.c.message_id}
    terms: list[tuple[Any, bool, bool]] = []
    for key, ids in zip(sort, keyed, strict=True):
        value = columns[key.name] if key.name in columns else _index_value(key, r, ids)
        terms.append((value, key.descending, key.name not in _NOT_NULL))
    names = {k.name for k in sort}
    if "_lastUpdated" not in names:
        terms.append((r.c.last_updated, True, False))
    if "_id" not in names:
        terms.append((r.c.id, False, False))
    return terms


def _terms_order(terms: Iterable[tuple[Any, bool, bool]]) -> list[Any]:
    return [_ordered(value, descending, last) for value, descending, last in terms]


def _ordered(value: Any, descending: bool, nulls_last: bool) -> Any:
    ordered = value.desc() if descending else value.asc()
    return ordered.nulls_last() if nulls_last else ordered


def _index_value(key: SortKey, r: FromClause, ids: Ids) -> Any:
    kind = key.param.type
    si = _rows(key)
    column = _sort_value(si, kind, key.descending)
    pick = func.max if key.descending else func.min
    return (
        select(pick(column))
        .where(
            si.c.resource_key == r.c.resource_key,
            rows_in(si, ids, kind, of_resource=True),
        )
        .scalar_subquery()
    )

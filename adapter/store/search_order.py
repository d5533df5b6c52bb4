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
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import FromClause, func, literal_column, select

from adapter.fhir.search_results import SortKey
from adapter.store.models import SearchIndex

_si = SearchIndex.__table__

# parameter type -> (column ascending, column descending)
_SORT_COLUMNS = {
    "date": ("value_date_start", "value_date_end"),
    "token": ("code", "code"),
    "uri": ("code", "code"),
    "string": ("value_norm", "value_norm"),
    "quantity": ("value_number", "value_number"),
    "reference": ("reference", "reference"),
}


_NOT_NULL = ("_id", "_lastUpdated")


def order_by(sort: tuple[SortKey, ...], r: FromClause) -> list[Any]:
    columns = {"_lastUpdated": r.c.last_updated, "_id": r.c.id, "_source": r.c.message_id}
    order: list[Any] = []
    for key in sort:
        value = columns[key.name] if key.name in columns else _index_value(key, r)
        ordered = value.desc() if key.descending else value.asc()
        order.append(ordered if key.name in _NOT_NULL else ordered.nulls_last())
    names = {k.name for k in sort}
    if "_lastUpdated" not in names:
        order.append(r.c.last_updated.desc())
    if "_id" not in names:
        order.append(r.c.id.asc())
    return order


def _index_value(key: SortKey, r: FromClause) -> Any:
    si = _si.alias()
    kind = key.param.type
    column = si.c[_SORT_COLUMNS[kind][1 if key.descending else 0]]
    pick = func.max if key.descending else func.min
    return (
        select(pick(column))
        .where(
            si.c.resource_type == r.c.resource_type,
            si.c.resource_id == r.c.id,
            si.c.kind == literal_column(f"'{kind}'"),
            si.c.param == key.param.name,
        )
        .scalar_subquery()
    )

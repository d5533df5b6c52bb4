"""PostgreSQL: the references that name a stored resource as one array per resource under
GIN (decision 0088, after the study 0087).

On PostgreSQL a reference row of ``search_index`` that names its target by key
(``target_key``, decision 0080) is not written: the resource's such values are one row of
``search_terms`` (``resource_key``, ``refs bigint[]``), each element ``param_id << 40 |
target_key``, an exact key (no hash: no false positive), under a GIN index. A reference
kept as text (its target not stored at the write, or not a resource of this store) and
``:identifier`` values stay rows of ``search_index``. SQLite keeps its rows (no GIN).

A reference with no value at all (only a display: a Provenance ``agent``, a report's
``performer``) was a row carrying nothing but its existence, kept for ``:missing``. On
PostgreSQL it is a **presence marker** in the same array: ``param_id << 40`` (target 0, no
resource has key 0; decision 0124). ``reference_rows()`` reads it back as the row it was
(``target_key`` NULL), so every reader that starts from the resource sees what it saw;
a probe naming targets never names 0.

Readers:

* A search that starts from targets (a reference criterion by key, a chain, a reverse
  include, a sort walking its targets) asks GIN: ``refs && ARRAY[keys]`` (``refs_any``).
* A reader that starts from the referring resource (a forward include, ``_has``, a sort's
  value of one resource, ``:not`` and ``:missing`` probes correlated on the resource)
  reads ``reference_rows()``: on SQLite ``search_index`` itself; on PostgreSQL every
  ``search_index`` row and the arrays unnested as reference rows of the same columns (a
  ``UNION ALL`` whose members take the probe's ``resource_key``, the primary key of each
  table). A probe naming targets never reads it: it would unnest every array (only
  ``:missing=false`` of a reference does, a scan of the arrays).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    Select,
    bindparam,
    delete,
    false,
    func,
    literal_column,
    or_,
    select,
    true,
    type_coerce,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import array as pg_array
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import TableClause

from adapter.store.models import SEARCH_TERMS, SearchIndex

SHIFT = 40  # a target's key below, its parameter above
TARGET_MAX = (1 << SHIFT) - 1  # 1.1e12 resources
PARAM_MAX = (1 << (63 - SHIFT)) - 1  # 8.4 million (type, parameter, kind) rows
REFERENCE_KIND = 4  # models.KINDS["reference"]

search_terms = SEARCH_TERMS
_t = search_terms
_BIGINTS = ARRAY(BigInteger())


def uses_terms(session: Session) -> bool:
    """Whether the store keeps references by key in ``search_terms`` (PostgreSQL)."""
    return session.get_bind().dialect.name == "postgresql"


def ref_key(param_id: int, target_key: int) -> int:
    """The element of one reference: exact, checked to fit its bits."""
    if not 0 < target_key <= TARGET_MAX or not 0 < param_id <= PARAM_MAX:
        raise ValueError(f"search_terms: key out of range (param {param_id}, target {target_key})")
    return param_id << SHIFT | target_key


def presence_key(param_id: int) -> int:
    """The element of a reference with no value (a display only): its parameter, target 0."""
    if not 0 < param_id <= PARAM_MAX:
        raise ValueError(f"search_terms: parameter id out of range ({param_id})")
    return param_id << SHIFT


def keys_array(keys: Iterable[int]) -> ColumnElement[Any]:
    """The keys as one ``bigint[]`` parameter of the statement. Bound, not written into
    the SQL: a statement text per patient filled SQLAlchemy's compiled cache (each entry
    tens of KB, up to 750 a process) and raised the night's PSS (decision 0088)."""
    return bindparam(None, [int(k) for k in keys], type_=_BIGINTS, unique=True)


def _param_part(param_id: int) -> ColumnElement[int]:
    """``param_id << 40`` as a constant of the statement, checked to fit its bits."""
    if not 0 < param_id <= PARAM_MAX:
        raise ValueError(f"search_terms: parameter id out of range ({param_id})")
    return literal_column(str(param_id << SHIFT), BigInteger())


def refs_any(terms: Any, param_ids: Iterable[int], targets: Iterable[int]) -> ColumnElement[bool]:
    """``terms`` (an alias of search_terms) names one of ``targets`` by one of
    ``param_ids``: one GIN probe with every combination."""
    keys = sorted(ref_key(p, t) for p in param_ids for t in targets)
    if not keys:
        return false()
    return terms.c.refs.op("&&")(keys_array(keys))


def refs_any_of(terms: Any, param_ids: Iterable[int], targets: Select[Any]) -> ColumnElement[bool]:
    """``refs_any`` of the targets a subquery selects (their keys, one column): the
    subquery is run once (an InitPlan) and its array probes GIN."""
    found = targets.subquery()
    column = found.c[0]
    parts = []
    for pid in param_ids:
        element = column + _param_part(pid)
        array = select(func.array_agg(element)).scalar_subquery()
        parts.append(terms.c.refs.op("&&")(type_coerce(array, _BIGINTS)))
    return or_(false(), *parts)


def refs_name(terms: Any, param_ids: Iterable[int], target: Any) -> ColumnElement[bool]:
    """``terms`` names the target whose key is the column ``target`` (of a row the statement
    reads first: a sort's walk over targets) by one of ``param_ids``."""
    parts = []
    for pid in param_ids:
        parts.append(target + _param_part(pid))
    if not parts:
        return false()
    return terms.c.refs.op("&&")(type_coerce(pg_array(parts), _BIGINTS))


def targets_of(resources: Select[Any], param_ids: Iterable[int]) -> Select[Any]:
    """``SELECT target_key``: the targets the arrays of ``resources`` (a subquery of
    resource keys) name by one of ``param_ids``: each array read by its primary key and
    unnested (a reader that starts from the referring resources: ``_has``, an include)."""
    pids = sorted(param_ids)
    t = _t.alias()
    u = func.unnest(t.c.refs).table_valued("k").render_derived(name="u")
    k = u.c.k
    target = (k.op("&")(literal_column(str(TARGET_MAX), BigInteger()))).label("target_key")
    # a presence marker's target 0 names no resource (keys start at 1): joined to nothing
    param = k.op(">>")(literal_column(str(SHIFT)))
    query = (
        select(t.c.resource_key, target)
        .select_from(t.join(u, true()))
        .where(t.c.resource_key.in_(resources))
    )
    if not pids:
        return query.where(false())
    return query.where(param.in_([literal_column(str(p), BigInteger()) for p in pids]))


def delete_terms(session: Session, rkeys: list[int]) -> None:
    session.execute(delete(_t).where(_t.c.resource_key.in_(rkeys)))


def term_rows(rows: Iterable[tuple[int, int, int | None]]) -> list[tuple[int, list[int]]]:
    """(resource_key, param_id, target_key) of reference rows named by key, target None for
    a reference with no value (its presence marker) -> one (resource_key, sorted distinct
    elements) per resource."""
    by_resource: dict[int, set[int]] = {}
    for rkey, pid, target in rows:
        key = presence_key(pid) if target is None else ref_key(pid, target)
        by_resource.setdefault(rkey, set()).add(key)
    return [(rkey, sorted(keys)) for rkey, keys in by_resource.items()]


class _ReferenceRows(TableClause):
    """``search_index`` as its reference rows' readers see it (module docstring): the table
    on SQLite; on PostgreSQL the table's rows and the arrays as rows (``_union``). Always
    used through an alias (PostgreSQL 15 wants a name for a subquery in FROM)."""

    inherit_cache = True


_si = SearchIndex.__table__
# (column, its value in an array's row on PostgreSQL): every column of search_index
_ARRAY_ROW = {
    "row_id": "{first} + u.n",
    "resource_key": "t.resource_key",
    "value_date_start": "NULL::timestamptz",
    "value_date_end": "NULL::timestamptz",
    "value_number": "NULL::float8",
    "target_key": "NULLIF(u.k & {mask}, 0)",  # 0: a presence marker, a row without value
    "param_id": "(u.k >> {shift})::int",
    "system_id": "NULL::int",
    "kind": "4::smallint",
    "code": "NULL::text",
    "value": "NULL::text",
    "value_norm": "NULL::text",
    "reference": "NULL::text",
    "code_full": "NULL::text",
    "value_norm_full": "NULL::text",
    "reference_full": "NULL::text",
}
assert set(_ARRAY_ROW) == {c.name for c in _si.c}
# its own name: SQLAlchemy's statement cache tells it from a ``search_index`` table by it
REFERENCE_ROWS = _ReferenceRows("search_refs", *(Column(c, _si.c[c].type) for c in _ARRAY_ROW))


def reference_rows(name: str | None = None) -> Any:
    """A new alias of the reference rows (``_ReferenceRows``)."""
    return REFERENCE_ROWS.alias(name)


@compiles(_ReferenceRows)
def _plain(element: _ReferenceRows, compiler: Any, **kw: Any) -> str:
    return str(compiler.preparer.format_table(_si))


# an array's rows are numbered after every sequence number, in the array's (key) order: as
# migration 0037's downgrade writes them back, after the resource's other rows
ARRAY_ROW_FIRST = 1 << 62
_UNION = (
    "(SELECT {columns} FROM {si} UNION ALL SELECT {values} FROM {terms} AS t"
    " CROSS JOIN LATERAL unnest(t.refs) WITH ORDINALITY AS u (k, n))"
)


@compiles(_ReferenceRows, "postgresql")
def _union(element: _ReferenceRows, compiler: Any, **kw: Any) -> str:
    preparer = compiler.preparer
    return rows_sql(preparer.format_table(_si), preparer.format_table(_t))


def rows_sql(index: str = "search_index", terms: str = "search_terms") -> str:
    """PostgreSQL's ``reference_rows`` as SQL text (a parenthesised subquery; tests and
    benchmarks that read rows by SQL)."""
    values = ", ".join(
        v.format(first=ARRAY_ROW_FIRST, mask=TARGET_MAX, shift=SHIFT) for v in _ARRAY_ROW.values()
    )
    return _UNION.format(columns=", ".join(_ARRAY_ROW), si=index, values=values, terms=terms)

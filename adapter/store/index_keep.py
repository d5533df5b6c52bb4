"""An updated resource's search index rows: keep the stored ones that did not change
(decision 0138).

Before, every stored row of an updated resource was deleted and all its rows written again.
On PostgreSQL each rewritten entry lands inside ``ix_search_index_resource`` and the per-kind
indexes at its old key, splits a full page and leaves two half-full ones (decision 0136);
on both databases it is write work for values that stayed. Here the rows the resource
stores are read (one statement per batch of resources), compared with the rows the store
would write now, numbers (``row_id``) included, and only the difference is written: the
stored rows no longer derived are deleted, the derived rows not stored are inserted. The
stored result is the same row for row as after a delete and a full insert.

A stored value read back in another form than the one written (a type the comparison does
not see as equal) only costs its row a delete and an insert, as before: nothing is kept
that differs.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any, Final

from sqlalchemy import text
from sqlalchemy.orm import Session

_CHUNK: Final = 500  # keys per SQLite statement: under its bound parameter limit

# the columns compared, in the order of the rows as written (``("row_id", *_INDEX_COLUMNS)``
# of adapter/store/resources.py, checked there)
COLUMNS: Final = (
    "row_id", "resource_key", "value_date_start", "value_date_end", "value_number",
    "target_key", "param_id", "system_id", "kind", "code", "value", "value_norm",
    "reference", "code_full", "value_norm_full", "reference_full",
)  # fmt: skip
_SELECT: Final = ", ".join(COLUMNS)
# PostgreSQL: the keys as one array behind an InitPlan (the plan stays on
# ix_search_index_resource whatever their number: decision 0090); a row deleted by its
# ``ctid``, which cannot move while this transaction holds its resource's lock
_PG_READ: Final = text(
    f"SELECT ctid::text, {_SELECT} FROM search_index "
    "WHERE resource_key = ANY(ARRAY(SELECT unnest(CAST(:keys AS BIGINT[]))))"
)
_PG_DELETE: Final = text("DELETE FROM search_index WHERE ctid = ANY(CAST(:tids AS tid[]))")
_PG_READ_TERMS: Final = text(
    "SELECT resource_key, refs, toks FROM search_terms "
    "WHERE resource_key = ANY(ARRAY(SELECT unnest(CAST(:keys AS BIGINT[]))))"
)
_PG_DELETE_TERMS: Final = text(
    "DELETE FROM search_terms WHERE resource_key = ANY(CAST(:keys AS BIGINT[]))"
)
_SQLITE_DELETE: Final = (
    "DELETE FROM search_index WHERE resource_key = ? AND kind = ? AND row_id = ?"
)


def keep_stored(
    session: Session,
    rows: Sequence[tuple[Any, ...]],
    replacing: Collection[int],
    *,
    kept: list[tuple[bool, ...]] | None = None,
) -> list[tuple[Any, ...]]:
    """Of ``rows`` (search_index rows in ``COLUMNS`` order, as the driver or the store's
    insert takes them), those to insert; the stored rows of the resources ``replacing``
    (resource keys) that are not among ``rows`` are deleted here. The rows of other
    resources are returned as given. ``kept`` (one entry a row, ``without_nulls``), when
    given, is narrowed in place to the rows returned."""
    if not replacing:
        return list(rows)
    connection = session.connection()
    postgresql = connection.dialect.name == "postgresql"
    stored: dict[tuple[Any, ...], list[Any]] = {}
    if postgresql:
        found = session.execute(_PG_READ, {"keys": sorted(replacing)}).all()
        for tid, *row in found:
            stored.setdefault(tuple(row), []).append(tid)
    else:
        keys = sorted(replacing)
        for start in range(0, len(keys), _CHUNK):
            chunk = keys[start : start + _CHUNK]
            marks = ", ".join("?" * len(chunk))
            sql = f"SELECT {_SELECT} FROM search_index WHERE resource_key IN ({marks})"
            for row in connection.exec_driver_sql(sql, tuple(chunk)).all():
                row = tuple(row)
                stored.setdefault(row, []).append((row[1], row[8], row[0]))
    out = []
    narrowed: list[tuple[bool, ...]] | None = [] if kept is not None else None
    for n, row in enumerate(rows):
        if row[1] in replacing:
            handles = stored.get(row)
            if handles:  # the same row is stored: kept
                handles.pop()
                continue
        out.append(row)
        if narrowed is not None:
            narrowed.append(kept[n])  # type: ignore[index]
    if kept is not None and narrowed is not None:
        kept[:] = narrowed
    gone = [handle for handles in stored.values() for handle in handles]
    if gone:
        if postgresql:
            session.execute(_PG_DELETE, {"tids": gone})
        else:
            connection.exec_driver_sql(_SQLITE_DELETE, gone)
    return out


def keep_terms(
    session: Session,
    terms: Sequence[tuple[int, list[int], list[int]]],
    replacing: Collection[int],
) -> list[tuple[int, list[int], list[int]]]:
    """PostgreSQL: of ``terms`` (resource_key, refs, toks: rows of search_terms), those to
    insert; the stored rows of ``replacing`` that differ from theirs, or that have none now,
    are deleted here. A row that did not change stays as it is (a new copy of it would be a
    new entry for every element in both GIN indexes and in ``pk_search_terms``)."""
    if not replacing:
        return list(terms)
    found = session.execute(_PG_READ_TERMS, {"keys": sorted(replacing)}).all()
    stored = {rkey: (list(refs), list(toks)) for rkey, refs, toks in found}
    out = []
    for rkey, refs, toks in terms:
        if stored.get(rkey) == (refs, toks):
            del stored[rkey]
            continue
        out.append((rkey, refs, toks))
    if stored:
        session.execute(_PG_DELETE_TERMS, {"keys": sorted(stored)})
    return out

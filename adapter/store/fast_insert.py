"""Multi-row INSERTs on SQLite without SQLAlchemy's work per row (decision 0050).

``session.execute(insert(table), rows)`` builds, for each row, a dictionary of every bind
parameter and a list of processed values: on the bulk path (about 100 search index rows,
8 resource and history rows and 11 outbox rows per message) that was more Python time than
SQLite's own executemany of the same rows. Here the statement is compiled once per table
and set of columns, each column's bind processor (the same one SQLAlchemy applies: UTC
datetimes to text, bodies to zstd frames, booleans) is taken once, and the rows go to the
driver as tuples. The values stored are the same; statement events and error wrapping
(``DBAPIError``, what adapter/store/refusals.py classifies) are SQLAlchemy's, through
``exec_driver_sql``.

Only where the compiled statement binds exactly the rows' keys (no column default to fill
in) and the driver takes positional ``?`` parameters (SQLite).

On PostgreSQL (psycopg 3) a batch of rows goes by ``COPY ... FROM STDIN`` (decisions 0034
for the search index, 0053 for every table): psycopg's executemany sends one prepared
execution per row, which cost more client CPU than the rows themselves; COPY streams them
in one statement. The same bind processors
are applied first; a refused value fails the COPY as it failed the executemany, wrapped
in the same ``DBAPIError`` subclass (IntegrityError, DataError ...) with the driver's
SQLSTATE, so adapter/store/refusals.py reads it unchanged. Statement events do not see
the COPY (``before_cursor_execute`` fires for SQL statements only).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from sqlalchemy import Table, insert
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

# COPY costs two round trips (start, finish) where a pipelined executemany costs one: worth
# it for the batch's many rows (search index, outbox), not for a message's few
_COPY_MIN_ROWS = 64


@dataclass(frozen=True, slots=True)
class _Plan:
    sql: str
    values: Callable[[dict[str, Any]], tuple[Any, ...]]  # the row's values, in bind order
    processors: tuple[tuple[int, Callable[[Any], Any]], ...]  # (position, processor)


_PLANS: dict[tuple[str, str, tuple[str, ...]], _Plan | None] = {}


def insert_rows(session: Session, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """INSERT ``rows`` (dictionaries with the same keys) into ``table``: one executemany."""
    if not rows:
        return
    connection = session.connection()
    keys = tuple(rows[0])
    if len(rows) >= _COPY_MIN_ROWS and connection.dialect.driver == "psycopg":
        copy = _copy_plan(table, connection.dialect, keys)
        if copy is not None:
            _copy(session, copy, rows)
            return
    plan = _plan(table, connection.dialect, keys)
    if plan is None:
        session.execute(insert(table), list(rows))
        return
    values, processors = plan.values, plan.processors
    if processors:
        params = []
        for row in rows:
            given = list(values(row))
            for at, process in processors:
                given[at] = process(given[at])
            params.append(tuple(given))
    else:
        params = [values(row) for row in rows]
    connection.exec_driver_sql(plan.sql, params)


def _plan(table: Table, dialect: Dialect, keys: tuple[str, ...]) -> _Plan | None:
    cache = (dialect.name, table.name, keys)
    if cache in _PLANS:
        return _PLANS[cache]
    plan = None
    if dialect.paramstyle == "qmark" and len(keys) > 1:
        compiled = insert(table).compile(dialect=dialect, column_keys=list(keys))
        order = tuple(compiled.positiontup or ())
        if sorted(order) == sorted(keys):  # no default filled in, no extra parameter
            plan = _Plan(compiled.string, itemgetter(*order), _processors(table, dialect, order))
    if len(_PLANS) < 256:
        _PLANS[cache] = plan
    return plan


def _processors(
    table: Table, dialect: Dialect, order: tuple[str, ...]
) -> tuple[tuple[int, Callable[[Any], Any]], ...]:
    """Each column's bind processor (the one SQLAlchemy applies), by position in ``order``."""
    found = []
    for at, key in enumerate(order):
        process = table.c[key].type.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            found.append((at, process))
    return tuple(found)


def _copy_plan(table: Table, dialect: Dialect, keys: tuple[str, ...]) -> _Plan | None:
    cache = ("copy", table.name, keys)
    if cache in _PLANS:
        return _PLANS[cache]
    plan = None
    # every column left out must be filled by the server (a sequence), not by SQLAlchemy
    left_out = [c for c in table.c if c.key not in keys]
    if len(keys) > 1 and all(c.default is None for c in left_out):
        preparer = dialect.identifier_preparer
        columns = ", ".join(preparer.quote(table.c[key].name) for key in keys)
        sql = f"COPY {preparer.format_table(table)} ({columns}) FROM STDIN"
        plan = _Plan(sql, itemgetter(*keys), _processors(table, dialect, keys))
    if len(_PLANS) < 256:
        _PLANS[cache] = plan
    return plan


def _copy(session: Session, plan: _Plan, rows: Sequence[dict[str, Any]]) -> None:
    import psycopg  # only reached with the psycopg driver

    session.flush()  # the COPY bypasses the session: rows it holds (a foreign key's) go first
    connection = session.connection()
    values, processors = plan.values, plan.processors
    cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        with cursor.copy(plan.sql) as copy:
            for row in rows:
                given = values(row)
                if processors:
                    given = list(given)
                    for at, process in processors:
                        given[at] = process(given[at])
                copy.write_row(given)
    except psycopg.Error as exc:
        # the same exception SQLAlchemy raises for a refused executemany (refusals.py)
        raise DBAPIError.instance(
            plan.sql, None, exc, psycopg.Error, dialect=connection.dialect
        ) from exc
    finally:
        cursor.close()

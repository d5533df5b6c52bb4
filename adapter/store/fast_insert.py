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
in) and the driver takes positional ``?`` parameters (SQLite); elsewhere the rows go
through ``session.execute`` as before (PostgreSQL: its executemany is batched already).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from sqlalchemy import Table, insert
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session


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
    plan = _plan(table, connection.dialect, tuple(rows[0]))
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
            processors = []
            for at, key in enumerate(order):
                column_type = table.c[key].type
                process = column_type.dialect_impl(dialect).bind_processor(dialect)
                if process is not None:
                    processors.append((at, process))
            plan = _Plan(compiled.string, itemgetter(*order), tuple(processors))
    if len(_PLANS) < 256:
        _PLANS[cache] = plan
    return plan

"""Multi-row INSERTs on SQLite without SQLAlchemy's work per row (decision 0050).

``session.execute(insert(table), rows)`` builds, for each row, a dictionary of every bind
parameter and a list of processed values: on the bulk path (about 100 search index rows,
8 resource and history rows and 11 outbox rows per message) that was more Python time than
SQLite's own executemany of the same rows. Here the statement is compiled once per table
and set of columns, each column's bind processor (the same one SQLAlchemy applies: UTC
datetimes to text, bodies to zstd frames, booleans) is taken once, and the rows go to the
driver as tuples. The processors run a column at a time, a date column's once per
distinct value and none for None where the processor keeps None (decision 0050, amended
2026-12-05); the search index's rows come as tuples already (``insert_tuples``), without
a dictionary per row. The values stored are the same; statement events and error wrapping
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

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import chain
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection, DateTime, Table, insert
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from adapter.store.types import NamedCode, UTCDateTime, UuidText
from adapter.store.wide_insert import ROWS_A_STATEMENT, wide, widened

# COPY costs two round trips (start, finish) where a pipelined executemany costs one: worth
# it for the batch's many rows (search index, outbox), not for a message's few
_COPY_MIN_ROWS = 64
# PostgreSQL's most bound parameters a statement (the protocol's 16-bit count): rows past
# it go by executemany as before
_PG_BINDS = 65535


@dataclass(frozen=True, slots=True)
class _Plan:
    sql: str
    order: tuple[str, ...]  # the keys in bind order
    processors: tuple[_Processor, ...]


# (position, processor, None passes as it is, memoised): a processor that maps None to None
# is not called for None (most index rows have no date); a date column's processor runs
# once per distinct value of a call (a message's few times repeat over its resources)
_Processor = tuple[int, Callable[[Any], Any], bool, bool]
_Convert = dict[str, Callable[[Any], Any]]

_PLANS: dict[tuple[str, str, tuple[str, ...]], _Plan | None] = {}


def insert_rows(session: Session, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """INSERT ``rows`` (dictionaries with the same keys) into ``table``: one executemany."""
    if not rows:
        return
    keys = tuple(rows[0])
    connection = session.connection()
    dialect = connection.dialect
    if len(rows) >= _COPY_MIN_ROWS and dialect.driver == "psycopg":
        insert_tuples(session, table, keys, list(map(itemgetter(*keys), rows)))
        return
    plan = _plan(table, dialect, keys)
    if plan is None:
        session.execute(insert(table), list(rows))
        return
    # the rows' values in bind order, to the driver on the connection and plan at hand
    values = list(map(itemgetter(*plan.order), rows))
    _executemany(connection, plan.sql, _processed(values, plan.processors, plan.order, None))


def insert_tuples(
    session: Session,
    table: Table,
    keys: tuple[str, ...],
    rows: Sequence[Sequence[Any]],
    convert: _Convert | None = None,
) -> None:
    """INSERT ``rows``, each the values of ``keys`` in that order, into ``table``: what
    ``insert_rows`` does without a dictionary per row (the search index's ~84 rows per
    message; fastest with ``keys`` in the table's column order). ``convert``: per key, a
    function applied to a value that is not None before the column's bind processor (the
    search index's system text to its id)."""
    if not rows:
        return
    connection = session.connection()
    dialect = connection.dialect
    if len(rows) >= _COPY_MIN_ROWS and dialect.driver == "psycopg":
        copy = _copy_plan(table, dialect, keys)
        if copy is not None:
            _copy(session, copy, _processed(rows, copy.processors, keys, convert))
            return
    plan = _plan(table, dialect, keys)
    if plan is None:  # a default to fill in, or not qmark: SQLAlchemy's own way
        dicts = [dict(zip(keys, row, strict=True)) for row in rows]
        for key, function in (convert or {}).items():
            for row in dicts:
                if row[key] is not None:
                    row[key] = function(row[key])
        session.execute(insert(table), dicts)
        return
    if plan.order != keys:  # the rows' values in bind order
        positions = itemgetter(*(keys.index(key) for key in plan.order))
        rows = [positions(row) for row in rows]
    _executemany(connection, plan.sql, _processed(rows, plan.processors, plan.order, convert))


# SQLite: a batch's rows go N to an INSERT of N rows (``wide``, decision 0151); the tests
# set 1 to see the rows one a statement
_ROWS_A_STATEMENT = ROWS_A_STATEMENT


def _executemany(connection: Connection, sql: str, rows: list[tuple[Any, ...]]) -> None:
    """``driver_executemany`` of ``sql`` (an INSERT of one row) and ``rows``; on SQLite
    as INSERTs of several rows each and the rest one a statement, on PostgreSQL as one
    INSERT of every row: the same rows, in the same order (decisions 0151, 0156)."""
    if len(rows) < 2:
        driver_executemany(connection, sql, rows)
        return
    if connection.dialect.driver == "psycopg":
        # psycopg's executemany binds, sends and executes each row on its own (~3x the
        # client's CPU and ~2x the backend's of one INSERT of the rows: decision 0156)
        if len(rows) * len(rows[0]) <= _PG_BINDS:
            _insert_at_once(connection, sql, rows)
        else:
            driver_executemany(connection, sql, rows)
        return
    if connection.dialect.name != "sqlite":
        driver_executemany(connection, sql, rows)
        return
    for wide_sql, some in wide([(sql, rows)], _ROWS_A_STATEMENT):
        driver_executemany(connection, wide_sql, some)


def _insert_at_once(connection: Connection, sql: str, rows: list[tuple[Any, ...]]) -> None:
    """PostgreSQL: ``sql`` (an INSERT of one row, ``%s`` parameters) for every row of
    ``rows`` as one INSERT of them all. On psycopg's ``RawCursor`` with the statement's
    ``$n`` parameters written once (``_numbered``): psycopg caches its own translation of
    ``%s`` only for statements of up to 50 parameters, and translating a wide one again
    at each call cost more than the rows' executemany (decision 0156). Errors as
    ``driver_executemany`` raises them; observed statements through SQLAlchemy."""
    import psycopg  # only reached with the psycopg driver

    wide_sql = widened(sql, len(rows))
    values = tuple(chain.from_iterable(rows))
    if _observed(connection):
        connection.exec_driver_sql(wide_sql, values)
        return
    raw = connection.connection.dbapi_connection
    try:
        with psycopg.RawCursor(raw) as cursor:  # type: ignore[arg-type]
            cursor.execute(_numbered(wide_sql), values)
    except psycopg.Error as exc:
        raise DBAPIError.instance(
            wide_sql,
            values,
            exc,
            psycopg.Error,
            hide_parameters=connection.engine.hide_parameters,
            dialect=connection.dialect,
        ) from exc


_NUMBERED: dict[str, str] = {}
_NUMBERED_MAX = 1024
_PERCENT = re.compile(r"%%|%s")


def _numbered(sql: str) -> str:
    """``sql``'s ``%s`` parameters as PostgreSQL's ``$1``, ``$2`` ... (``%%`` as ``%``)."""
    found = _NUMBERED.get(sql)
    if found is None:
        count = iter(range(1, 1 << 16))
        found = _PERCENT.sub(lambda m: "%" if m.group(0) == "%%" else f"${next(count)}", sql)
        if len(_NUMBERED) < _NUMBERED_MAX:
            _NUMBERED[sql] = found
    return found


def _observed(connection: Connection) -> bool:
    """Whether anything observes the connection's statements: cursor events (the tests
    count statements so), echo, the dialect's events (``handle_error`` among them)."""
    dispatch = connection.dispatch
    return bool(
        connection._echo
        or connection.dialect._has_events
        or dispatch.before_cursor_execute
        or dispatch.after_cursor_execute
    )


def driver_execute(connection: Connection, sql: str) -> None:
    """``connection.exec_driver_sql(sql)`` for a statement without parameters or rows
    (SQLite's SAVEPOINT / RELEASE, adapter/store/engine.py), as ``driver_executemany``."""
    if _observed(connection):
        connection.exec_driver_sql(sql)
        return
    error = connection.dialect.loaded_dbapi.Error
    try:
        connection.connection.dbapi_connection.execute(sql)  # type: ignore[union-attr]
    except error as exc:
        raise DBAPIError.instance(
            sql,
            None,
            exc,
            error,
            hide_parameters=connection.engine.hide_parameters,
            dialect=connection.dialect,
        ) from exc


def driver_executemany(connection: Connection, sql: str, rows: list[tuple[Any, ...]]) -> None:
    """``connection.exec_driver_sql(sql, rows)`` for a statement that returns nothing (an
    INSERT): straight to the DBAPI connection's ``executemany`` when nothing observes the
    connection's statements (no cursor or error events, no echo, no dialect events), the
    driver's error wrapped as SQLAlchemy wraps it (the ``DBAPIError`` subclass
    adapter/store/refusals.py reads). SQLAlchemy's execution context, cursor and result
    for each of a message's executemanys cost about as much Python as a small one itself
    (decision 0100). Otherwise, or with parameters that are not a list of tuples, through
    SQLAlchemy as before."""
    if _observed(connection):
        connection.exec_driver_sql(sql, rows)
        return
    raw = connection.connection.dbapi_connection
    error = connection.dialect.loaded_dbapi.Error
    try:
        if connection.dialect.driver == "psycopg":  # psycopg pipelines it: one round trip
            with raw.cursor() as cursor:  # type: ignore[union-attr]
                if len(rows) == 1:  # without the pipeline's own work (decision 0156)
                    cursor.execute(sql, rows[0])
                else:
                    cursor.executemany(sql, rows)
        else:
            raw.executemany(sql, rows)  # type: ignore[union-attr]
    except error as exc:
        raise DBAPIError.instance(
            sql,
            rows,
            exc,
            error,
            hide_parameters=connection.engine.hide_parameters,
            dialect=connection.dialect,
            ismulti=True,
        ) from exc


def _processed(
    rows: Sequence[Sequence[Any]],
    processors: tuple[_Processor, ...],
    keys: tuple[str, ...],
    convert: _Convert | None,
) -> list[tuple[Any, ...]]:
    """The rows' values as the driver takes them: converted, then bind-processed, a column
    at a time (the rows transposed and back by ``zip``, in C: no list per row)."""
    if not processors and not convert:
        return [row if isinstance(row, tuple) else tuple(row) for row in rows]
    columns: list[Sequence[Any]] = list(zip(*rows, strict=True))
    for key, function in (convert or {}).items():
        at = keys.index(key)
        columns[at] = _apply(columns[at], function, True, True)
    for at, process, skip_none, memo in processors:
        columns[at] = _apply(columns[at], process, skip_none, memo)
    return list(zip(*columns, strict=True))


def _apply(
    values: Sequence[Any], function: Callable[[Any], Any], skip_none: bool, memo: bool
) -> Sequence[Any]:
    """``function`` of each value (None left as it is when ``skip_none``); with ``memo``
    once per distinct value (hashable values)."""
    if memo:
        distinct = set(values)
        if skip_none:
            distinct.discard(None)
        done = {value: function(value) for value in distinct}
        if skip_none:
            done[None] = None
        return list(map(done.__getitem__, values))
    if skip_none:
        return [None if value is None else function(value) for value in values]
    return list(map(function, values))


def plan_of(table: Table, dialect: Dialect, keys: tuple[str, ...]) -> _Plan | None:
    """The compiled qmark INSERT of ``keys`` into ``table``, its bind order and processors
    (None: SQLAlchemy's own way). adapter/store/index_rows_sqlite.py builds on it."""
    return _plan(table, dialect, keys)


def _plan(table: Table, dialect: Dialect, keys: tuple[str, ...]) -> _Plan | None:
    cache = (dialect.name, table.name, keys)
    if cache in _PLANS:
        return _PLANS[cache]
    plan = None
    if _on_driver(dialect) and len(keys) > 1:
        # (psycopg: as for an executemany, without the RETURNING of a generated key)
        many = dialect.driver == "psycopg"
        compiled = insert(table).compile(
            dialect=dialect, column_keys=list(keys), for_executemany=many
        )
        sql, order = positional(compiled)
        if sorted(order) == sorted(keys):  # no default filled in, no extra parameter
            plan = _Plan(sql, order, _processors(table, dialect, order))
    if len(_PLANS) < 256:
        _PLANS[cache] = plan
    return plan


def _on_driver(dialect: Dialect) -> bool:
    """Whether this module's plans run on the dialect's driver: SQLite's (positional ``?``)
    and psycopg's (SQLAlchemy's named ``%(name)s`` made positional ``%s``, decision 0141)."""
    return (dialect.paramstyle, dialect.driver) in (("qmark", "pysqlite"), ("pyformat", "psycopg"))


# a named parameter of a pyformat statement, or an escaped percent sign (kept as it is)
_NAMED = re.compile(r"%%|%\(([^)]+)\)s")


def positional(compiled: Any) -> tuple[str, tuple[str, ...]]:
    """``compiled``'s SQL with positional parameters, and their names in order: SQLite's as
    compiled; psycopg's named ``%(name)s`` each made ``%s`` (its ``::type`` cast kept), so
    that the values go as one tuple, not a dictionary, per execution. () when the names were
    escaped by the compiler (then they are not the parameters' own) or are not pyformat."""
    if compiled.positiontup is not None:
        return compiled.string, tuple(compiled.positiontup)
    if compiled.dialect.paramstyle != "pyformat" or compiled.escaped_bind_names:
        return compiled.string, ()
    order: list[str] = []

    def one(found: re.Match[str]) -> str:
        if found.group(1) is None:
            return "%%"
        order.append(found.group(1))
        return "%s"

    return _NAMED.sub(one, compiled.string), tuple(order)


def _processors(table: Table, dialect: Dialect, order: tuple[str, ...]) -> tuple[_Processor, ...]:
    """Each column's bind processor (the one SQLAlchemy applies), by position in ``order``."""
    found = []
    for at, key in enumerate(order):
        column_type = table.c[key].type
        process = column_type.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            # JSON binds None as 'null': only a processor seen to keep None may skip it
            skip_none = process(None) is None
            # hashable, immutable, repeated: a message's instants; its id on each of its
            # resource and outbox rows (decision 0083); an outbox state's name (0150)
            memo = isinstance(column_type, UTCDateTime | DateTime | UuidText | NamedCode)
            found.append((at, process, skip_none, memo))
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
        plan = _Plan(sql, keys, _processors(table, dialect, keys))
    if len(_PLANS) < 256:
        _PLANS[cache] = plan
    return plan


def _copy(session: Session, plan: _Plan, rows: list[tuple[Any, ...]]) -> None:
    """COPY ``rows`` (their values processed already, in ``plan.order``)."""
    import psycopg  # only reached with the psycopg driver

    session.flush()  # the COPY bypasses the session: rows it holds (a foreign key's) go first
    connection = session.connection()
    cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        with cursor.copy(plan.sql) as copy:
            for row in rows:
                copy.write_row(row)
    except psycopg.Error as exc:
        # the same exception SQLAlchemy raises for a refused executemany (refusals.py)
        raise DBAPIError.instance(
            plan.sql, None, exc, psycopg.Error, dialect=connection.dialect
        ) from exc
    finally:
        cursor.close()

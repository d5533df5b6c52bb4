"""A Core statement built once, run on SQLite's driver without SQLAlchemy's execution
(decision 0106).

Bulk ingest runs a few small statements a message (a SELECT of the rows it merges and
saves, one of the care relationships open with its patient, the care upsert with its
RETURNING, the message row's result UPDATE): SQLAlchemy's execution around each (execution
context, cursor and result objects, the compiled cache's key) cost several times SQLite's
own work for such a statement (~60 µs against ~20 µs, hot; more in the bulk process). Here
the statement is compiled once per dialect and set of parameter names (as
``Connection.execute`` compiles it: ``column_keys``, so an UPDATE sets the columns the
parameters name); each call binds its parameters as SQLAlchemy binds them
(``construct_params``, the bind processors), runs the SQL on the DBAPI connection and
applies each column's result processor (the same UTC datetimes, booleans, bodies). What is
returned is what ``session.execute(statement, params)`` returns, as plain named tuples
(attribute, index and unpacking access; no ``_mapping``).

Only on SQLite, for a statement without expanding parameters and without a default
SQLAlchemy computes in Python (``insert_prefetch``, ``update_prefetch``), when nothing
observes the connection's statements (``fast_insert._observed``: no cursor events, no echo,
no dialect events) and the connection has no execution options: otherwise ``None`` and the
caller goes through SQLAlchemy as before. The session is autoflushed first, as ``session.execute``
does for a Core statement. A driver error is wrapped as SQLAlchemy wraps it
(``DBAPIError.instance``), so callers and adapter/store/refusals.py read the same exception.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, InvalidRequestError
from sqlalchemy.orm import Session

from adapter.store.fast_insert import _observed, _on_driver, driver_executemany, positional


@dataclass(frozen=True, slots=True)
class _Plan:
    statement: Any  # kept: the plans are keyed by its id (a SELECT, INSERT, UPDATE)
    sql: str
    compiled: Any  # SQLCompiler: construct_params
    order: tuple[str, ...]  # bound parameters' names in positional order
    binds: tuple[tuple[int, Callable[[Any], Any]], ...]  # (position, bind processor)
    results: tuple[tuple[int, Callable[[Any], Any]], ...]  # (column, result processor)
    row: type  # a named tuple of the selected columns' names


_PLANS: dict[tuple[int, str, tuple[str, ...]], _Plan | None] = {}
_PLANS_MAX = 4096


def driver_rows(
    session: Session, statement: Any, params: dict[str, Any], *, flush: bool = True
) -> list[Any] | None:
    """``session.execute(statement, params).all()`` on SQLite's driver (the module's
    docstring); None where it does not apply (the caller executes as before).
    ``flush=False``: ``session.connection().execute(...)``'s, without the autoflush."""
    connection = session.connection()
    dialect = connection.dialect
    if not _on_driver(dialect) or _observed(connection) or connection._execution_options:
        return None
    plan = _plan(statement, dialect, tuple(sorted(params)))
    if plan is None:
        return None
    if flush:
        session._autoflush()  # what session.execute does first for a Core statement
    values = plan.compiled.construct_params(params)
    bound = [values[name] for name in plan.order]
    for at, process in plan.binds:  # None too, as SQLAlchemy does
        bound[at] = process(bound[at])
    raw = connection.connection.dbapi_connection
    try:
        cursor = raw.execute(plan.sql, bound)  # type: ignore[union-attr]
        try:  # (psycopg refuses to fetch from a statement without rows)
            found = cursor.fetchall() if cursor.description is not None else []
        finally:
            cursor.close()
    except dialect.loaded_dbapi.Error as exc:
        raise _wrapped(connection, plan.sql, bound, exc) from exc
    make = plan.row._make
    if not plan.results:
        return [make(row) for row in found]
    out = []
    for row in found:
        items = list(row)
        for at, process in plan.results:
            items[at] = process(items[at])
        out.append(make(items))
    return out


def driver_many(session: Session, statement: Any, rows: list[dict[str, Any]]) -> bool:
    """``statement`` (returning no rows) once per parameter set of ``rows``, in one
    executemany on SQLite's driver, bound as ``driver_rows`` binds them (decision 0133: a
    bulk batch's held result UPDATEs); False where that does not apply (the caller
    executes as before). The rows must have the same keys; the session is not flushed."""
    connection = session.connection()
    dialect = connection.dialect
    if not _on_driver(dialect) or _observed(connection) or connection._execution_options:
        return False
    keys = tuple(sorted(rows[0]))
    plan = _plan(statement, dialect, keys)
    if plan is None or plan.results or any(tuple(sorted(r)) != keys for r in rows):
        return False
    construct, order, binds = plan.compiled.construct_params, plan.order, plan.binds
    bound = []
    for params in rows:
        values = construct(params)
        one = [values[name] for name in order]
        for at, process in binds:  # None too, as SQLAlchemy does
            one[at] = process(one[at])
        bound.append(one)
    driver_executemany(connection, plan.sql, bound)  # type: ignore[arg-type]
    return True


def _wrapped(connection: Any, sql: str, bound: Any, exc: Exception) -> DBAPIError:
    """The driver's error as SQLAlchemy would have raised it (parameters hidden as the
    engine says)."""
    dialect = connection.dialect
    return DBAPIError.instance(
        sql,
        bound,
        exc,
        dialect.loaded_dbapi.Error,
        hide_parameters=connection.engine.hide_parameters,
        dialect=dialect,
    )


def execute_rows(
    session: Session, statement: Any, params: dict[str, Any], *, flush: bool = True
) -> Sequence[Any]:
    """The statement's rows (none for a statement that returns none): on SQLite's driver
    where ``driver_rows`` applies, else through SQLAlchemy (``session.execute``, or with
    ``flush=False`` the session's connection, without the autoflush)."""
    found = driver_rows(session, statement, params, flush=flush)
    if found is not None:
        return found
    if flush:
        result = session.execute(statement, params)
    else:
        result = session.connection().execute(statement, params)
    return result.all() if result.returns_rows else []


def _plan(statement: Any, dialect: Dialect, keys: tuple[str, ...]) -> _Plan | None:
    key = (id(statement), dialect.name, keys)
    plan = _PLANS.get(key, False)
    if plan is not False and (plan is None or plan.statement is statement):
        return plan  # type: ignore[return-value]
    plan = _made(statement, dialect, keys)
    if len(_PLANS) >= _PLANS_MAX:
        _PLANS.clear()
    _PLANS[key] = plan
    return plan


def _made(statement: Any, dialect: Dialect, keys: tuple[str, ...]) -> _Plan | None:
    # as Connection.execute compiles it: an INSERT or UPDATE sets the columns the
    # parameters name (``column_keys``)
    compiled = statement.compile(dialect=dialect, column_keys=list(keys))
    sql, order = positional(compiled)
    if (
        not order
        # parameters rendered into the SQL at execution (expanding, literal_execute)
        or compiled.post_compile_params
        or compiled.literal_execute_params
        or any(b.expanding or b.literal_execute for b in compiled.binds.values())
        # a column default or onupdate SQLAlchemy computes in Python at execution
        or compiled.insert_prefetch
        or compiled.update_prefetch
    ):
        return None
    processors = compiled._bind_processors
    binds = tuple((n, processors[name]) for n, name in enumerate(order) if name in processors)
    names = []
    results = []
    for n, column in enumerate(compiled._result_columns):  # SELECT, or RETURNING
        names.append(column.keyname)
        try:
            process = column.type._cached_result_processor(dialect, None)
        except (TypeError, InvalidRequestError):
            # psycopg's numbers: the processor depends on the column's type code, which
            # only the cursor's description gives (SQLAlchemy asks it so); not here
            return None
        if process is not None:
            results.append((n, process))
    try:
        row = namedtuple("Row", names)  # type: ignore[misc]
    except ValueError:  # a name that is no identifier, or twice
        return None
    return _Plan(statement, sql, compiled, order, binds, tuple(results), row)

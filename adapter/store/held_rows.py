"""SQLite, a bulk batch: its new resource rows held until the batch's writes (decision 0152).

``save_resources`` holds each new resource row of a batch's message (and the new version of
one the batch holds already) in ``BatchWrites.held`` instead of inserting it: the rows go
at the flush, several to an INSERT (adapter/store/wide_insert.py), before the index rows
whose foreign key names them. What the batch reads back of those rows sees them:

* ``lock_resources`` and ``save_resources``' own read (``_locked_rows``) take a held row
  from ``BatchWrites.held``, the others from the database;
* any other statement on the batch's connection that names the ``resource`` table (a
  ``before_execute`` listener, ``watch``) first inserts the held rows (``flush_held_rows``),
  as a search first writes the held index rows (decision 0047). ``quiet``: a statement
  that needs no held row (the UPDATE of a stored row, the history row of a stored
  version) leaves them held.

A message rolled back to its savepoint drops its held rows (``BatchWrites.rollback``). The
rows are inserted in the order they were first held, a new version taking its row's place:
the same rows as one INSERT a message and an UPDATE a later change gave.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Final

from sqlalchemy import Connection, event
from sqlalchemy.orm import Session
from sqlalchemy.sql import visitors
from sqlalchemy.sql.elements import TextClause
from sqlalchemy.sql.selectable import TableClause

_TABLE: Final = "resource"
_NAMED: Final = re.compile(r"\bresource\b", re.IGNORECASE)
# id(statement) -> (the statement, whether it names the table): statements are mostly built
# once (module constants, cached shapes); bounded, cleared when full
_NAMES: dict[int, tuple[Any, bool]] = {}
_NAMES_MAX: Final = 4096


def names_resource(statement: Any) -> bool:
    """Whether ``statement`` (Core or ORM, or text) names the ``resource`` table."""
    found = _NAMES.get(id(statement))
    if found is not None and found[0] is statement:
        return found[1]
    named = _names(statement)
    if len(_NAMES) >= _NAMES_MAX:
        _NAMES.clear()
    _NAMES[id(statement)] = (statement, named)
    return named


def _names(statement: Any) -> bool:
    if isinstance(statement, TextClause):
        return _NAMED.search(statement.text) is not None
    for element in visitors.iterate(statement):
        if isinstance(element, TableClause) and element.name == _TABLE:
            return True
        if isinstance(element, TextClause) and _NAMED.search(element.text) is not None:
            return True
    return False


Watched = tuple[Connection, Callable[..., None]]


def watch(session: Session) -> Watched:
    """From now on a statement on ``session``'s connection (``session.execute`` and
    ``connection.execute`` alike) naming the resource table first inserts the rows its
    batch holds, until ``unwatch``. The driver's own statements (adapter/store/
    driver_select.py, fast_insert.py) pass by: of the resource table only ``_locked_rows``
    reads there."""
    connection = session.connection()

    def before_execute(_conn: Any, statement: Any, *_: Any) -> None:
        before_read(session, statement)

    event.listen(connection, "before_execute", before_execute)
    return connection, before_execute


def unwatch(watched: Watched) -> None:
    connection, listener = watched
    if event.contains(connection, "before_execute", listener):
        event.remove(connection, "before_execute", listener)


def before_read(session: Session, statement: Any) -> None:
    """Insert the held rows of ``session``'s batch if ``statement`` names their table."""
    from adapter.store.resources import flush_held_rows, held_writes  # it imports this module

    writes = held_writes(session)
    if writes is None or not writes.held or writes.quiet:
        return
    if names_resource(statement):
        flush_held_rows(session)

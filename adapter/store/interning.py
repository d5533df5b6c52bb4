"""Small tables that give a repeated value of ``search_index`` a small integer (decisions
0059 and 0071): ``search_system`` (code systems) and ``search_param`` (resource type,
parameter, kind). The tables only grow: a value, once given an id, keeps it.

Writes (``Interned.ids``) look the ids up in a cache per engine and process, which holds
only ids known to be committed; a value not there is read, and if absent created:

* PostgreSQL: created by ``INSERT ... ON CONFLICT DO NOTHING`` on a connection of its own,
  committed at once, then read. Two processes creating the same value meet on the unique
  key and both read the one row; no lock is held inside the writer's transaction (two
  writers creating values in opposite orders cannot deadlock), and the id cannot vanish
  with a rolled-back message.
* SQLite: created inside the writer's transaction, which holds the database's write lock
  (BEGIN IMMEDIATE), so no other writer races it. A savepoint or the whole transaction may
  still roll it back, so ids created here reach the cache only after the transaction's
  commit (not a savepoint's release, which SQLAlchemy also reports as one), as read
  just before it (``before_commit``); until then each write reads them again.

Searches do not use the cache: they compare the id with a subquery of the table, so an
unknown value matches nothing and no process state can be stale. The cache must be
forgotten (``forget_all``) by whoever empties the tables under a live engine (the tests'
truncation between tests does).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Hashable, Iterable
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, Engine, Table, event, select, tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from adapter.store.bound import bind_of
from adapter.store.engine import make_engine

K = TypeVar("K", bound=Hashable)

_lock = threading.Lock()
_side: weakref.WeakKeyDictionary[Engine, Engine] = weakref.WeakKeyDictionary()
_all: list[Interned[Any]] = []


class Interned(Generic[K]):
    """The ids of one interning table. ``lookup`` gives a value's unique key columns (in
    ``key_columns`` order), ``extra`` the other columns of its new row."""

    def __init__(
        self,
        table: Table,
        id_column: str,
        key_columns: tuple[str, ...],
        lookup: Callable[[K], tuple[Any, ...]],
        extra: Callable[[K], dict[str, Any]] = lambda _: {},
    ) -> None:
        self.table = table
        self._id = table.c[id_column]
        self._keys = tuple(table.c[name] for name in key_columns)
        self._lookup = lookup
        self._extra = extra
        self._chunk = 900 // len(key_columns)  # bound parameters per IN list (SQLite)
        self._cache: weakref.WeakKeyDictionary[Engine, dict[K, int]] = weakref.WeakKeyDictionary()
        self._new = f"adapter.store.interning.{table.name}.new"  # session.info: created here
        self._seen = f"adapter.store.interning.{table.name}.seen"  # their ids before commit
        _all.append(self)

    def _key_in(self, chunk: list[tuple[Any, ...]]) -> ColumnElement[bool]:
        if len(self._keys) == 1:
            return self._keys[0].in_([key[0] for key in chunk])
        return tuple_(*self._keys).in_(chunk)

    def known_ids(self, session: Session, values: Iterable[K]) -> dict[K, int]:
        """The ids of those ``values`` the store has (read, none created)."""
        wanted = {self._lookup(v): v for v in set(values)}
        found: dict[K, int] = {}
        keys = list(wanted)
        for start in range(0, len(keys), self._chunk):
            chunk = keys[start : start + self._chunk]
            rows = session.execute(select(*self._keys, self._id).where(self._key_in(chunk)))
            for *key, value_id in rows:
                found[wanted[tuple(key)]] = value_id
        return found

    def known(self, session: Session, values: Iterable[K]) -> dict[K, int]:
        """``known_ids`` through the cache: the ids of those ``values`` the store has, read
        only for values not cached (committed ids found are cached, as ``ids`` does)."""
        cache = self._cache_of(session)
        wanted = set(values)
        out = {v: cache[v] for v in wanted if v in cache}
        missing = [v for v in wanted if v not in out]
        if missing:
            out.update(self._remember(session, cache, self.known_ids(session, missing)))
        return out

    def _cache_of(self, session: Session, engine: Engine | None = None) -> dict[K, int]:
        with _lock:
            return self._cache.setdefault(engine or bind_of(session).engine, {})

    def _remember(self, session: Session, cache: dict[K, int], found: dict[K, int]) -> dict[K, int]:
        """Cache the committed ids of ``found`` and give it back: on PostgreSQL every row
        read (a READ COMMITTED statement sees only committed rows besides the transaction's
        own, and it creates none); on SQLite those this transaction did not create (it
        holds the only write lock)."""
        created_here = session.info.get(self._new, ())
        postgres = bind_of(session).engine.dialect.name == "postgresql"
        with _lock:
            for value, value_id in found.items():
                if postgres or value not in created_here:
                    cache[value] = value_id
        return found

    def ids(self, session: Session, values: Iterable[K]) -> dict[K, int]:
        """The id of each of ``values``, created where the store has none yet."""
        engine = bind_of(session).engine
        cache = self._cache_of(session, engine)
        wanted = set(values)
        missing = [v for v in wanted if v not in cache]
        if not missing:
            return {v: cache[v] for v in wanted}
        found = self.known_ids(session, missing)
        absent = [v for v in missing if v not in found]
        postgres = engine.dialect.name == "postgresql"
        if absent:
            absent.sort(key=self._lookup)  # the same order in every process
            if postgres:
                self._create_apart(engine, absent)
            else:
                session.execute(
                    sqlite_insert(self.table).on_conflict_do_nothing(),
                    [self._row(v) for v in absent],
                )
                session.info.setdefault(self._new, set()).update(absent)
            found.update(self.known_ids(session, absent))
        self._remember(session, cache, found)
        out = {v: cache[v] for v in wanted if v in cache}
        out.update(found)
        if len(out) != len(wanted):  # e.g. a REPEATABLE READ snapshot older than the creation
            name = self.table.name
            raise RuntimeError(f"{name}: a created row is not visible to this transaction")
        return out

    def _row(self, value: K) -> dict[str, Any]:
        row = dict(zip((c.key for c in self._keys), self._lookup(value), strict=True))
        row.update(self._extra(value))
        return row

    def _create_apart(self, engine: Engine, values: list[K]) -> None:
        """PostgreSQL: create the rows in a transaction of their own, committed at once."""
        with _lock:
            side = _side.get(engine)
            if side is None:
                side = _side[engine] = make_engine(
                    engine.url.render_as_string(hide_password=False), poolclass=NullPool
                )
        with side.begin() as connection:
            connection.execute(
                pg_insert(self.table).on_conflict_do_nothing(), [self._row(v) for v in values]
            )

    def forget(self, engine: Engine | None = None) -> None:
        """Drop the cached ids of ``engine``, or of every engine (after the table was emptied
        under them)."""
        with _lock:
            if engine is None:
                self._cache.clear()
            else:
                self._cache.pop(engine, None)

    def _before_commit(self, session: Session) -> None:
        if session.in_nested_transaction():
            # a savepoint released (SQLAlchemy reports it as a commit): its rows are kept
            # only if the transaction around it commits, so they wait for that commit
            return
        created = session.info.pop(self._new, None)
        if created:  # as they will be committed: a rolled-back savepoint took its rows away
            session.info[self._seen] = (
                bind_of(session).engine,
                self.known_ids(session, created),
            )

    def _after_commit(self, session: Session) -> None:
        if session.in_nested_transaction():
            return
        seen = session.info.pop(self._seen, None)
        if seen is not None:
            engine, ids = seen
            with _lock:
                self._cache.setdefault(engine, {}).update(ids)

    def _after_rollback(self, session: Session) -> None:
        session.info.pop(self._new, None)
        session.info.pop(self._seen, None)


def forget_all(engine: Engine | None = None) -> None:
    """``forget`` of every interning table (after the tables were emptied)."""
    for interned in _all:
        interned.forget(engine)


@event.listens_for(Session, "before_commit")
def _before_commit(session: Session) -> None:
    for interned in _all:
        interned._before_commit(session)


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    for interned in _all:
        interned._after_commit(session)


@event.listens_for(Session, "after_soft_rollback")
def _after_rollback(session: Session, _previous: Any) -> None:
    if not session.in_transaction():  # the outermost transaction ended
        for interned in _all:
            interned._after_rollback(session)

"""The token ``system`` of ``search_index`` as a small integer (decision 0059).

A handful of code systems (``http://loinc.org``, a facility's identifier namespaces, the
unit system) repeat in most token and quantity rows; ``search_index.system_id`` names one
row of ``search_system`` instead of repeating the URI in every row and every token index
entry. The table only grows: a system, once given an id, keeps it.

Writes (``system_ids``) look the ids up in a cache per engine and process, which holds
only ids known to be committed; a system not there is read, and if absent created:

* PostgreSQL: created by ``INSERT ... ON CONFLICT DO NOTHING`` on a connection of its own,
  committed at once, then read. Two processes creating the same system meet on the unique
  hash and both read the one row; no lock is held inside the writer's transaction (two
  writers creating systems in opposite orders cannot deadlock), and the id cannot vanish
  with a rolled-back message.
* SQLite: created inside the writer's transaction, which holds the database's write lock
  (BEGIN IMMEDIATE), so no other writer races it. A savepoint or the whole transaction may
  still roll it back, so ids created here reach the cache only after the commit, as read
  just before it (``before_commit``); until then each write reads them again.

Searches do not use the cache: they compare ``system_id`` with a scalar subquery of the
hash (``system_id_of``), so an unknown system matches nothing and no process state can be
stale. The cache must be forgotten (``forget``) by whoever empties the table under a live
engine (the tests' truncation between tests does).
"""

from __future__ import annotations

import hashlib
import threading
import weakref
from collections.abc import Iterable
from typing import Any, Final

from sqlalchemy import Engine, ScalarSelect, event, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from adapter.store.engine import make_engine
from adapter.store.models import SearchSystem

_system = SearchSystem.__table__
_NEW: Final = "adapter.store.systems.new"  # session.info: systems this transaction created
_SEEN: Final = "adapter.store.systems.seen"  # session.info: their ids just before commit
_CHUNK = 500  # hashes per IN list (SQLite's bound parameter limit)

_lock = threading.Lock()
_cache: weakref.WeakKeyDictionary[Engine, dict[str, int]] = weakref.WeakKeyDictionary()
_side: weakref.WeakKeyDictionary[Engine, Engine] = weakref.WeakKeyDictionary()


def system_hash(system: str) -> str:
    """The lookup key of a system: a URI may be longer than a b-tree entry allows."""
    return hashlib.sha256(system.encode("utf-8")).hexdigest()


def system_id_of(system: str) -> ScalarSelect[Any]:
    """``(SELECT system_id FROM search_system WHERE system_hash = ...)``: NULL when unknown,
    which equals nothing."""
    return (
        select(_system.c.system_id)
        .where(_system.c.system_hash == system_hash(system))
        .scalar_subquery()
    )


def known_ids(session: Session, systems: Iterable[str]) -> dict[str, int]:
    """The ids of those ``systems`` the store has (read, none created)."""
    wanted = {system_hash(s): s for s in set(systems)}
    found: dict[str, int] = {}
    hashes = list(wanted)
    for start in range(0, len(hashes), _CHUNK):
        chunk = hashes[start : start + _CHUNK]
        rows = session.execute(
            select(_system.c.system_hash, _system.c.system_id).where(
                _system.c.system_hash.in_(chunk)
            )
        )
        for digest, system_id in rows:
            found[wanted[digest]] = system_id
    return found


def system_ids(session: Session, systems: Iterable[str]) -> dict[str, int]:
    """The id of each of ``systems``, created where the store has none yet."""
    engine = session.get_bind().engine
    with _lock:
        cache = _cache.setdefault(engine, {})
    wanted = set(systems)
    missing = [s for s in wanted if s not in cache]
    if not missing:
        return {s: cache[s] for s in wanted}
    found = known_ids(session, missing)
    absent = sorted(s for s in missing if s not in found)
    postgres = engine.dialect.name == "postgresql"
    if absent:
        if postgres:
            _create_apart(engine, absent)
        else:
            session.execute(
                sqlite_insert(_system).on_conflict_do_nothing(),
                [{"system": s, "system_hash": system_hash(s)} for s in absent],
            )
            session.info.setdefault(_NEW, set()).update(absent)
        found.update(known_ids(session, absent))
    # committed: on PostgreSQL every row read (a READ COMMITTED statement sees only committed
    # rows besides the transaction's own, and it creates none); on SQLite those this
    # transaction did not create (it holds the only write lock)
    created_here = session.info.get(_NEW, ())
    with _lock:
        for system, system_id in found.items():
            if postgres or system not in created_here:
                cache[system] = system_id
    out = {s: cache[s] for s in wanted if s in cache}
    out.update(found)
    if len(out) != len(wanted):  # e.g. a REPEATABLE READ snapshot older than the creation
        raise RuntimeError("search_system: a created system is not visible to this transaction")
    return out


def _create_apart(engine: Engine, systems: list[str]) -> None:
    """PostgreSQL: create the rows in a transaction of their own, committed at once."""
    with _lock:
        side = _side.get(engine)
        if side is None:
            side = _side[engine] = make_engine(
                engine.url.render_as_string(hide_password=False), poolclass=NullPool
            )
    rows = [{"system": s, "system_hash": system_hash(s)} for s in systems]
    with side.begin() as connection:
        connection.execute(pg_insert(_system).on_conflict_do_nothing(), rows)


def forget(engine: Engine | None = None) -> None:
    """Drop the cached ids of ``engine``, or of every engine (after a search_system table
    was emptied under them)."""
    with _lock:
        if engine is None:
            _cache.clear()
        else:
            _cache.pop(engine, None)


@event.listens_for(Session, "before_commit")
def _before_commit(session: Session) -> None:
    created = session.info.pop(_NEW, None)
    if created:  # as they will be committed: a rolled-back savepoint took its rows away
        session.info[_SEEN] = (session.get_bind().engine, known_ids(session, created))


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    seen = session.info.pop(_SEEN, None)
    if seen is not None:
        engine, ids = seen
        with _lock:
            _cache.setdefault(engine, {}).update(ids)


@event.listens_for(Session, "after_soft_rollback")
def _after_rollback(session: Session, _previous: Any) -> None:
    if not session.in_transaction():  # the outermost transaction ended
        session.info.pop(_NEW, None)
        session.info.pop(_SEEN, None)

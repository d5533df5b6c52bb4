"""adapter/store/resource_keys.py: the keys ``new_keys`` gives are never a stored resource's
and never given twice, while it reads the database less than once per call (decision 0050,
amended 2026-12-04 night): on SQLite the highest key stored is read once per transaction,
on PostgreSQL a session that asks often takes the sequence's values in blocks. SQLite and,
in the ``-m db`` pass, PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, event, func, select
from sqlalchemy.orm import Session, sessionmaker

from adapter.store import save_resources
from adapter.store.models import Resource
from adapter.store.resource_keys import _POOL_AFTER, _POOL_BLOCK, new_keys

NOW = datetime(2026, 12, 4, 22, 0, tzinfo=UTC)


@contextmanager
def key_reads(engine: Engine) -> Iterator[list[str]]:
    """The statements that read keys (max of resource_key, or the sequence)."""
    seen: list[str] = []

    def count(_c: Any, _cur: Any, statement: str, *_: Any) -> None:
        if "max(resource.resource_key)" in statement or "resource_key_seq" in statement:
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


def _observation(n: int) -> dict[str, Any]:
    return {"resourceType": "Observation", "id": f"obs-{n}", "status": "final"}


def _stored_keys(session: Session) -> list[int]:
    return list(session.scalars(select(Resource.resource_key)))


def test_keys_of_one_transaction_are_new_and_distinct_with_few_reads(
    engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    with session_factory.begin() as session:
        save_resources(session, [_observation(0)], message_id=None, now=NOW)
    with key_reads(engine) as reads, session_factory.begin() as session:
        given = [k for n in range(1, 11) for k in new_keys(session, n)]
        stored = _stored_keys(session)
    assert len(given) == len(set(given)) == 55
    assert not set(given) & set(stored)
    if engine.dialect.name == "sqlite":
        assert len(reads) == 1  # the highest key stored, once for the transaction
        assert min(given) > max(stored)
    else:  # one value at a time for the first calls, then blocks
        assert len(reads) <= _POOL_AFTER + 1
        assert len(given) <= _POOL_AFTER * 4 + _POOL_BLOCK


def test_a_new_transaction_reads_again_and_continues_above_what_others_stored(
    engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    session = session_factory()
    try:
        with session.begin():
            first = new_keys(session, 3)
            save_resources(session, [_observation(1)], message_id=None, now=NOW)
        # another session stores resources meanwhile
        with session_factory.begin() as other:
            save_resources(other, [_observation(n) for n in range(2, 7)], message_id=None, now=NOW)
        with key_reads(engine) as reads, session.begin():
            second = new_keys(session, 4)
            stored = _stored_keys(session)
    finally:
        session.close()
    assert not set(second) & set(stored)
    assert not set(second) & set(first)
    if engine.dialect.name == "sqlite":
        assert len(reads) == 1  # not the first transaction's answer
        assert min(second) > max(stored)


def test_keys_given_in_a_rolled_back_savepoint_are_only_a_gap(
    session_factory: sessionmaker[Session],
) -> None:
    with session_factory.begin() as session:
        kept = save_resources(session, [_observation(1)], message_id=None, now=NOW)
        savepoint = session.begin_nested()
        save_resources(session, [_observation(2)], message_id=None, now=NOW)
        savepoint.rollback()
        save_resources(session, [_observation(3)], message_id=None, now=NOW)
    with session_factory() as session:
        rows = session.execute(select(Resource.id, Resource.resource_key))
        keys = {row.id: row.resource_key for row in rows}
        assert set(keys) == {kept[0].id, "obs-3"}
        assert keys["obs-3"] != keys["obs-1"]
        assert session.scalar(select(func.count()).select_from(Resource)) == 2


def test_many_calls_of_one_session_stay_unique_across_sessions(
    session_factory: sessionmaker[Session],
) -> None:
    """Two sessions asking in turn (blocks on PostgreSQL, the write lock's order on SQLite:
    here one after the other) never get the same key."""
    given: list[int] = []
    for _ in range(2):
        with session_factory.begin() as session:
            for n in range(30):
                keys = new_keys(session, 1 + n % 3)
                given += keys
                rows = [_observation(k) for k in keys]
                save_resources(session, rows, message_id=None, now=NOW)
    with session_factory() as session:
        stored = _stored_keys(session)
    assert len(given) == len(set(given)) == 120
    assert len(stored) == 120  # save_resources' own keys, each resource one
    assert not set(given) & set(stored)

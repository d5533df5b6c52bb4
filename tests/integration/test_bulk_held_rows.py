"""A bulk batch's new resource rows held to its flush on SQLite (decision 0152): what the
batch reads back sees them (a later message's lock and save, any other read), a later
change takes its version in the held row, and a message rolled back to its savepoint drops
the rows it held. Runs on SQLite and, in the ``-m db`` pass, on PostgreSQL (where the rows
are inserted at once: the same answers)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, select, text
from sqlalchemy.orm import Session, sessionmaker

from adapter.pipeline.receipt import Receipt
from adapter.store import lock_resources, read_resource, save_resources
from adapter.store.models import Resource, ResourceVersion
from adapter.store.resources import batch_writes, flush_batch_writes
from tests.integration.referral_support import pipeline_for
from tests.integration.test_bulk_ingest import (
    BATCH_FAILED,
    LATE_PEER,
    _alone,
    _observation_values,
    _refuse_late,
    _routed,
    _stored,
    refusing_late,  # noqa: F401  (a fixture, found by its name)
)
from tests.integration.test_index_keep import observation
from tests.integration.test_long_values import long_oru

T0 = datetime(2026, 5, 3, 2, 0, 0, tzinfo=UTC)
T1 = T0 + timedelta(hours=1)
T2 = T1 + timedelta(hours=1)
O1 = ("Observation", "o1")


def _rows(session: Session) -> list[tuple[Any, ...]]:
    """The resource rows (type, id, version, status) and history rows (id, version,
    status) as stored."""
    current = [
        (r.resource_type, r.id, r.version_id, r.body.get("status"))
        for r in session.scalars(select(Resource).order_by(Resource.id))
    ]
    history = [
        (v.id, v.version_id, v.body and v.body.get("status"))
        for v in session.scalars(select(ResourceVersion).order_by(ResourceVersion.version_id))
    ]
    return [*current, *history]


def _in_database(session: Session) -> int:
    return session.execute(text("SELECT count(*) FROM resource")).scalar_one()  # type: ignore[no-any-return]


def test_a_resource_the_batch_made_is_read_back_and_takes_its_next_version(
    session_factory: sessionmaker[Session],
) -> None:
    with session_factory.begin() as session:
        writes = batch_writes(session)
        (made,) = save_resources(session, [observation()], message_id=None, now=T0)
        if writes.held is not None:  # SQLite: held, not in the database yet
            assert list(writes.held) == [O1]
        locked = lock_resources(session, [O1], now=T1)
        body = locked.body(*O1)
        assert body is not None and body["meta"]["versionId"] == "1"
        assert body["status"] == "final" and body == made.body
        body["status"] = "changed by the merge"  # a value of its own: the held row keeps its
        (amended,) = save_resources(
            session, [observation(status="amended")], message_id=None, now=T1, locked=locked
        )
        assert (amended.version_id, amended.changed) == (2, True)
        assert amended.resource_key == made.resource_key
        (again,) = save_resources(
            session, [observation(status="amended")], message_id=None, now=T2
        )
        assert (again.version_id, again.changed) == (2, False)
        if writes.held is not None:
            assert writes.held[O1]["version_id"] == 2
        flush_batch_writes(session)
    with session_factory() as session:
        assert _rows(session) == [("Observation", "o1", 2, "amended"), ("o1", 1, "final")]
        stored = read_resource(session, *O1)
        assert stored is not None and stored["meta"]["versionId"] == "2"


def test_any_other_read_of_the_batch_sees_the_held_rows(
    session_factory: sessionmaker[Session],
) -> None:
    with session_factory.begin() as session:
        writes = batch_writes(session)
        save_resources(session, [observation()], message_id=None, now=T0)
        # through the session, and through its connection (the steps' Core statements)
        assert _in_database(session) == 1
        save_resources(session, [observation(id="o2")], message_id=None, now=T0)
        found = session.connection().execute(select(Resource.__table__.c.id)).scalars()
        assert sorted(found) == ["o1", "o2"]
        if writes.held is not None:
            assert writes.held == {}  # inserted by those reads
        save_resources(session, [observation(id="o3")], message_id=None, now=T0)
        stored = read_resource(session, "Observation", "o3")
        assert stored is not None and stored["meta"]["versionId"] == "1"
        flush_batch_writes(session)
    with session_factory() as session:
        assert [r[1:3] for r in _rows(session)] == [("o1", 1), ("o2", 1), ("o3", 1)]


def test_a_message_rolled_back_drops_the_rows_it_held(
    session_factory: sessionmaker[Session],
) -> None:
    with session_factory.begin() as session:
        writes = batch_writes(session)
        save_resources(session, [observation()], message_id=None, now=T0)
        mark = writes.mark()
        savepoint = session.begin_nested()
        save_resources(
            session,
            [observation(status="amended"), observation(id="o2")],
            message_id=None,
            now=T1,
        )
        savepoint.rollback()
        writes.rollback(mark)
        if writes.held is not None:
            assert list(writes.held) == [O1] and writes.held[O1]["version_id"] == 1
        locked = lock_resources(session, [O1, ("Observation", "o2")], now=T2)
        assert locked.rows[O1].version_id == 1 and ("Observation", "o2") not in locked.rows
        (corrected,) = save_resources(
            session, [observation(status="corrected")], message_id=None, now=T2, locked=locked
        )
        assert corrected.version_id == 2
        flush_batch_writes(session)
    with session_factory() as session:
        assert _rows(session) == [("Observation", "o1", 2, "corrected"), ("o1", 1, "final")]


def test_a_failing_message_between_two_changes_of_a_new_resource_drops_its_version(
    session_factory: sessionmaker[Session],
    engine: Engine,
    tmp_path: Path,
    refusing_late: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # one batch: the first message makes the Observation (and the Patient, which the others
    # merge into), the second changes it, the third changes it and then fails (its status is
    # refused), the fourth changes it again: versions 1, 2 and 3, as one by one
    items = [
        (long_oru(obx5="一结果", control="HELD0001"), Receipt("std-hl7v2", "cli")),
        (long_oru(obx5="二结果", control="HELD0002"), Receipt("std-hl7v2", "cli")),
        (long_oru(obx5="三结果", control="HELD0003"), Receipt("std-hl7v2", "cli", peer=LATE_PEER)),
        (long_oru(obx5="四结果", control="HELD0004"), Receipt("std-hl7v2", "cli")),
    ]
    inserts: list[int] = []  # SQLite: the statement numbers of the INSERTs into resource
    seen = [0]

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen[0] += 1
        if statement.startswith("INSERT INTO resource ("):
            inserts.append(seen[0])
        if statement.startswith("RELEASE SAVEPOINT"):
            releases.append(seen[0])

    releases: list[int] = []
    event.listen(engine, "before_cursor_execute", count)
    try:
        with caplog.at_level(logging.INFO, logger="adapter.pipeline.bulk"):
            pipeline = pipeline_for(_routed(tmp_path), session_factory)
            bulk = list(pipeline.ingest_many(items, batch=10))
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert BATCH_FAILED not in caplog.text
    assert caplog.text.count("goes on its own") == 1
    alone, stored = _alone(tmp_path, items, _refuse_late)
    assert [r.status for r in bulk] == [r.status for r in alone]
    assert [r.status for r in bulk][:2] == ["processed", "processed"]
    assert _stored(session_factory) == stored
    assert _observation_values(session_factory) == {"四结果"}
    with session_factory() as session:
        versions = session.scalars(
            select(Resource.version_id).where(Resource.resource_type == "Observation")
        ).all()
    assert versions and max(versions) == 3
    if engine.dialect.name == "sqlite":  # stored again a savepoint a message (its held
        # result refused at the first flush): no resource row inserted between the messages'
        # savepoints, all of them at the flush after
        assert len(releases) >= 3
        assert not [n for n in inserts if releases[0] <= n <= releases[-1]]
        assert [n for n in inserts if n > releases[-1]]

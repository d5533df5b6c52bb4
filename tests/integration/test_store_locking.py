"""lock_resources: the rows a read-merge-write depends on are held from the read to the
commit (docs/decisions/0009-merge-locking.md)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, event, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from adapter.pipeline.ingest import _lost_race
from adapter.store import (
    LockedRows,
    lock_resources,
    read_history,
    read_resource,
    resource_state,
    save_resources,
)

T0 = datetime(2026, 5, 3, 2, 0, tzinfo=UTC)
KEY = ("Patient", "p1")


def patient(*numbers: str) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": "p1",
        "identifier": [{"system": "urn:example:mrn", "value": n} for n in numbers],
    }


def _postgres_only(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip(
            "row locks between concurrent transactions: PostgreSQL only (SQLite runs "
            "one writer at a time from BEGIN IMMEDIATE)"
        )


def test_a_new_merged_resource_is_saved_as_version_1(session_factory: sessionmaker) -> None:
    with session_factory.begin() as session:
        locked = lock_resources(session, [KEY], create_missing=[KEY], now=T0)
        assert locked.body(*KEY) is None  # a placeholder, if any, reads as absent
        save_resources(session, [patient("A")], message_id=None, now=T0, locked=locked)
    with session_factory() as session:
        stored = read_resource(session, *KEY)
        total, versions = read_history(session, *KEY)
    assert stored is not None and stored["meta"]["versionId"] == "1"
    assert total == 1 and versions[0].version_id == 1


def test_a_new_merged_resource_is_written_once(
    engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    """No placeholder row is written and then replaced (decision 0089): one INSERT of the
    resource, no UPDATE (an UPDATE left a dead copy of every new Patient on PostgreSQL)."""
    statements: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        statements.append(" ".join(statement.split()[:3]).upper())

    event.listen(engine, "before_cursor_execute", seen)
    try:
        with session_factory.begin() as session:
            locked = lock_resources(session, [KEY], create_missing=[KEY], now=T0)
            save_resources(session, [patient("A")], message_id=None, now=T0, locked=locked)
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert statements.count("INSERT INTO RESOURCE") == 1
    assert not any(s.startswith("UPDATE RESOURCE") for s in statements)


def test_a_placeholder_never_outlives_its_transaction(session_factory: sessionmaker) -> None:
    with session_factory() as session:
        lock_resources(session, [KEY], create_missing=[KEY], now=T0)
        session.rollback()
    with session_factory() as session:
        assert resource_state(session, *KEY) is None


def test_locked_rows_give_the_stored_body(session_factory: sessionmaker) -> None:
    with session_factory.begin() as session:
        save_resources(session, [patient("A")], message_id=None, now=T0)
    with session_factory.begin() as session:
        locked = lock_resources(session, [KEY, ("Observation", "o1")], now=T0)
        body = locked.body(*KEY)
        assert body is not None and body["identifier"][0]["value"] == "A"
        assert locked.body("Observation", "o1") is None


def test_save_refuses_resources_that_were_not_locked(session_factory: sessionmaker) -> None:
    with session_factory.begin() as session:
        locked = LockedRows(frozenset(), {})
        with pytest.raises(ValueError, match="did not lock"):
            save_resources(session, [patient("A")], message_id=None, now=T0, locked=locked)


def test_a_second_writer_waits_and_reads_what_the_first_wrote(
    engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    """The second transaction locks the (new) patient while the first holds it: it gets its
    lock only after the first committed, and then reads the first one's version."""
    _postgres_only(engine)
    seen: list[dict[str, Any] | None] = []
    locked_by_second = threading.Event()

    def second() -> None:
        with session_factory.begin() as session:
            locked = lock_resources(session, [KEY], create_missing=[KEY], now=T0)
            locked_by_second.set()
            seen.append(locked.body(*KEY))
            stored = locked.body(*KEY) or {"identifier": []}
            merged = patient(*[i["value"] for i in stored["identifier"]], "B")
            save_resources(session, [merged], message_id=None, now=T0, locked=locked)

    with session_factory.begin() as first:
        locked = lock_resources(first, [KEY], create_missing=[KEY], now=T0)
        thread = threading.Thread(target=second)
        thread.start()
        # the second transaction is queued behind this one's lock on the new key
        assert not locked_by_second.wait(1.0)
        save_resources(first, [patient("A")], message_id=None, now=T0, locked=locked)
    thread.join(timeout=30)
    assert seen and seen[0] is not None and seen[0]["identifier"][0]["value"] == "A"
    with session_factory() as session:
        stored = read_resource(session, *KEY)
    assert stored is not None
    assert [i["value"] for i in stored["identifier"]] == ["A", "B"]
    assert stored["meta"]["versionId"] == "2"


def test_a_deadlock_rollback_is_a_lost_race_to_retry(
    engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    """The pipeline retries a message PostgreSQL rolled back to break a deadlock; a real
    one, made on purpose by locking two rows in opposite orders, is recognised as such."""
    _postgres_only(engine)
    with session_factory.begin() as session:
        save_resources(
            session, [patient("A"), {**patient("B"), "id": "p2"}], message_id=None, now=T0
        )
    errors: list[BaseException] = []
    both_hold_one = threading.Barrier(2)

    def lock(first: str, then: str) -> None:
        try:
            with engine.begin() as conn:
                conn.execute(text("SELECT 1 FROM resource WHERE id = :i FOR UPDATE"), {"i": first})
                both_hold_one.wait()
                conn.execute(text("SELECT 1 FROM resource WHERE id = :i FOR UPDATE"), {"i": then})
        except OperationalError as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=lock, args=("p1", "p2")),
        threading.Thread(target=lock, args=("p2", "p1")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(errors) == 1
    assert _lost_race(errors[0])  # type: ignore[arg-type]


ORG = {"resourceType": "Organization", "id": "county", "name": "青山县人民医院"}


def _observation(oid: str) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "code": {"text": "WBC"},
        "performer": [{"reference": "Organization/county"}],
    }


def _save_in_another_transaction(
    session_factory: sessionmaker[Session], resources: list[dict[str, Any]]
) -> BaseException | None:
    """Save ``resources`` in a transaction of their own that gives up on a row lock after
    2 s; the error, or None when it committed."""
    try:
        with session_factory.begin() as session:
            session.execute(text("SET LOCAL lock_timeout = '2s'"))
            save_resources(session, resources, message_id=None, now=T0)
    except OperationalError as exc:
        return exc
    return None


def test_a_resource_saved_unchanged_is_not_locked(
    engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    """Two writers whose messages both repeat the same stored Organization unchanged do not
    queue behind each other (adapter sync --jobs): the first holds its transaction open,
    the second commits at once. Before, every resource of a message was locked until the
    commit of its (bulk) transaction, and the second waited."""
    _postgres_only(engine)
    with session_factory.begin() as session:
        save_resources(session, [ORG], message_id=None, now=T0)
    with session_factory.begin() as first:
        saved = save_resources(first, [ORG, _observation("o1")], message_id=None, now=T0)
        assert [s.changed for s in saved] == [False, True]
        error = _save_in_another_transaction(session_factory, [ORG, _observation("o2")])
        assert error is None
    with session_factory() as session:
        stored = read_resource(session, "Organization", "county")
        assert stored is not None and stored["meta"]["versionId"] == "1"
        assert read_resource(session, "Observation", "o1") is not None
        assert read_resource(session, "Observation", "o2") is not None


def test_a_resource_being_changed_is_still_locked(
    engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    """A writer that changes the Organization holds it: a second writer changing it too
    waits (here: gives up after its lock timeout); after the first commits, the second
    builds its version on the first one's."""
    _postgres_only(engine)
    with session_factory.begin() as session:
        save_resources(session, [ORG], message_id=None, now=T0)
    renamed = {**ORG, "name": "青山县人民医院 (总院)"}
    again = {**ORG, "name": "青山县医共体总院"}
    with session_factory.begin() as first:
        save_resources(first, [renamed], message_id=None, now=T0)
        error = _save_in_another_transaction(session_factory, [again])
        assert error is not None and "lock timeout" in str(error)
    assert _save_in_another_transaction(session_factory, [again]) is None
    with session_factory() as session:
        stored = read_resource(session, "Organization", "county")
        total, _ = read_history(session, "Organization", "county")
    assert stored is not None and stored["name"] == "青山县医共体总院"
    assert stored["meta"]["versionId"] == "3" and total == 3


def test_a_change_committed_between_the_read_and_the_lock_is_built_on(
    engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    """The unlocked read saw version 1, a concurrent writer committed version 2 before this
    writer locked the row: the version written is 3, made on the locked row, not a second
    version 2."""
    _postgres_only(engine)
    with session_factory.begin() as session:
        save_resources(session, [ORG], message_id=None, now=T0)
    renamed = {**ORG, "name": "青山县人民医院 (总院)"}
    again = {**ORG, "name": "青山县医共体总院"}
    with session_factory.begin() as other:  # holds version 2 until the writer below reads
        save_resources(other, [renamed], message_id=None, now=T0)
        done = threading.Event()
        result: list[BaseException | None] = []

        def writer() -> None:
            result.append(_save_in_another_transaction(session_factory, [again]))
            done.set()

        thread = threading.Thread(target=writer)
        thread.start()
        assert not done.wait(0.5)  # it read version 1 and now waits for the lock
    thread.join(timeout=30)
    assert result == [None]
    with session_factory() as session:
        stored = read_resource(session, "Organization", "county")
        total, _ = read_history(session, "Organization", "county")
    assert stored is not None and stored["name"] == "青山县医共体总院"
    assert stored["meta"]["versionId"] == "3" and total == 3


def test_a_message_locks_the_rows_it_merges_and_not_those_it_repeats_unchanged(
    engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    """Decision 0097: every lab report of a facility repeats its Organization unchanged. When
    the merge step locked every resource of the message, that one row was held until each
    message's (each batch's) commit, and two writers (``adapter sync --jobs 2``) took turns on
    it. Probed from a second connection just before the second message commits: the
    Patient it merged is locked, the Organization it repeated is not."""
    from adapter.pipeline.receipt import Receipt
    from tests.integration.connector_helpers import example_pipeline
    from tests.integration.test_long_values import long_oru

    _postgres_only(engine)
    pipeline = example_pipeline(session_factory)
    first = pipeline.ingest(long_oru(control="SHARE001"), Receipt("std-hl7v2", "http"))
    assert first.status == "processed", first
    probed = [r for r in first.resources if r.split("/")[0] in ("Organization", "Patient")]
    assert {r.split("/")[0] for r in probed} == {"Organization", "Patient"}
    held: set[str] = set()

    def probe(session: Session) -> None:
        with engine.connect() as other:
            other.execute(text("SET lock_timeout = '200ms'"))
            for ref in probed:
                rtype, rid = ref.split("/", 1)
                savepoint = other.begin_nested() if other.in_transaction() else other.begin()
                try:
                    other.execute(
                        text(
                            "SELECT 1 FROM resource WHERE resource_type = :t AND id = :i FOR UPDATE"
                        ),
                        {"t": rtype, "i": rid},
                    )
                except OperationalError:
                    held.add(rtype)
                savepoint.rollback()

    event.listen(session_factory, "before_commit", probe)
    try:
        second = pipeline.ingest(long_oru(control="SHARE002"), Receipt("std-hl7v2", "http"))
    finally:
        event.remove(session_factory, "before_commit", probe)
    assert second.status == "processed", second
    assert set(second.resources) >= set(probed)  # the same patient, the same facility
    assert held == {"Patient"}

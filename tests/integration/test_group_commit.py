"""Group commit of single documents (decision 0051, adapter/pipeline/group.py).

Groups are made to form for certain, with no timing: another connection holds the
database's write lock (SQLite) or a lock on inbound_message (PostgreSQL), so the first
caller waits inside its transaction while the others queue behind it; the lock is released
once they are all queued. Each caller must then get what ``Pipeline.ingest`` answers it
alone (a bad message, a duplicate, bytes twice in the group), its own request id on its
audit records, and nothing that its group's transaction did not commit. Runs on SQLite
and, in the ``-m db`` pass, on PostgreSQL.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session, sessionmaker

from adapter.audit.context import Caller, serving
from adapter.audit.verify import verify
from adapter.connectors.hl7_ack import read_ack
from adapter.pipeline import IngestResult, Pipeline
from adapter.pipeline import group as group_module
from adapter.pipeline.group import GroupCommit
from adapter.pipeline.receipt import Receipt
from adapter.store.audit_log import AuditRecord
from adapter.store.models import InboundMessage, Resource
from tests.integration.connector_helpers import example_pipeline
from tests.integration.test_connectors_mllp import BAD, _exchange, _listener
from tests.integration.test_long_values import (
    _assert_located,
    _refused_oru,
    long_oru,
    refusing_database,  # noqa: F401  (a fixture, found by its name)
)

GARBAGE = b"MSH|^~\\&|broken\rPID|1\rOBX|cut off"
Outcome = IngestResult | BaseException


@contextmanager
def _held(engine: Engine) -> Iterator[None]:
    """Another connection holds what a group's transaction needs until the block ends."""
    if engine.dialect.name == "sqlite":
        other = sqlite3.connect(engine.url.database or "", isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # SQLite's write lock, outside the engine's queue
        try:
            yield
        finally:
            other.execute("ROLLBACK")
            other.close()
        return
    with engine.connect() as conn, conn.begin():
        # reads go on (the duplicate lookup); the first insert waits
        conn.execute(text("LOCK TABLE inbound_message IN EXCLUSIVE MODE"))
        yield


def _until(condition: Callable[[], bool], what: str) -> None:
    """Wait for a state the test set up (not a timing assertion: the deadline only stops a
    broken test from hanging)."""
    deadline = time.monotonic() + 60
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never reached: {what}")
        time.sleep(0.01)


def _grouped(engine: Engine, group: GroupCommit, documents: dict[str, bytes]) -> dict[str, Outcome]:
    """Ingest ``documents`` (request id -> bytes) through ``group``: the first alone while
    the lock is held, all the others queued behind it, then the lock released."""
    outcomes: dict[str, Outcome] = {}

    def call(request_id: str, raw: bytes) -> None:
        with serving(Caller(request_id=request_id, address="127.0.0.1:1")):
            try:
                outcomes[request_id] = group.ingest(raw, Receipt("std-hl7v2", "http"))
            except Exception as exc:  # what the caller would answer (HTTP 5xx, no ACK)
                outcomes[request_id] = exc

    names = list(documents)
    threads = {n: threading.Thread(target=call, args=(n, documents[n])) for n in names}
    with _held(engine):
        threads[names[0]].start()
        _until(lambda: group._leading and group.waiting == 0, "the first caller leads")
        for name in names[1:]:
            threads[name].start()
        _until(lambda: group.waiting == len(names) - 1, "every other caller queued")
    for thread in threads.values():
        thread.join(120)
        assert not thread.is_alive()
    return outcomes


def _result(outcome: Outcome) -> IngestResult:
    assert isinstance(outcome, IngestResult), outcome
    return outcome


@pytest.mark.parametrize(
    ("with_refused", "workers"),
    [(False, 0), (True, 0), (False, 1)],
    ids=["committed", "refused-value", "translated-in-a-worker"],
)
def test_a_group_answers_each_caller_what_it_would_get_alone(
    session_factory: sessionmaker[Session],
    engine: Engine,
    refusing_database: None,  # noqa: F811
    with_refused: bool,
    workers: int,
) -> None:
    pipeline = example_pipeline(session_factory)
    with pipeline.translation_workers(workers):  # the server's, when it runs them
        _answers_each_caller(pipeline, session_factory, engine, with_refused)
        if workers:  # the callers' documents were sent to the worker
            assert pipeline.translation_pool is not None
            assert pipeline.translation_pool._executor is not None


def _answers_each_caller(
    pipeline: Pipeline, session_factory: sessionmaker[Session], engine: Engine, with_refused: bool
) -> None:
    earlier = long_oru(control="GROUP0000")
    before = pipeline.ingest(earlier, Receipt("std-hl7v2", "http"))
    good, other = long_oru(control="GROUP0001"), long_oru(control="GROUP0002")
    refused = _refused_oru("GROUP0003")
    documents = {
        "lead": long_oru(control="GROUP0009"),
        "good": good,
        "garbage": GARBAGE,
        "again-in-group": good,  # the same bytes twice in one group
        "sent-before": earlier,  # received before the group
        "other": other,
    }
    if with_refused:
        documents["refused"] = refused
    outcomes = _grouped(engine, pipeline.group_commit, documents)
    results = {name: _result(o) for name, o in outcomes.items()}
    if with_refused:
        # the refused value is met when the group's held index rows are written, which
        # fails the group's transaction: every document then went on its own
        assert (pipeline.group_commit.groups, pipeline.group_commit.grouped) == (0, 0)
    else:
        # the five behind the first in one transaction, answered from it: the good ones,
        # the garbage (quarantined in its savepoint), the duplicate of a stored one; the
        # bytes sent twice went alone (the single path answers them as a duplicate)
        assert (pipeline.group_commit.groups, pipeline.group_commit.grouped) == (1, 4)
    status = {name: (r.status, r.duplicate) for name, r in results.items()}
    # of the bytes sent twice, whichever queued first is stored, the other is its duplicate
    twice = sorted([status.pop("good"), status.pop("again-in-group")])
    assert twice == [("processed", False), ("processed", True)]
    assert status == {
        "lead": ("processed", False),
        "garbage": ("quarantined", False),
        "sent-before": ("processed", True),
        "other": ("processed", False),
        **({"refused": ("quarantined", False)} if with_refused else {}),
    }
    assert results["again-in-group"].message_id == results["good"].message_id
    assert results["sent-before"].message_id == before.message_id
    assert results["sent-before"].resources == before.resources
    assert results["garbage"].issues
    with session_factory() as session:
        kept = {m.id: m for m in session.scalars(select(InboundMessage))}
        # every distinct document kept once, the garbage (and the refused one) too
        assert len(kept) == 5 + with_refused
        assert bytes(kept[results["garbage"].message_id].raw) == GARBAGE
        for name in ("good", "other", "lead"):
            assert results[name].resources, name
            assert results[name].message_id in kept
        if with_refused:
            _assert_located(results["refused"].issues[0].as_dict())
            assert bytes(kept[results["refused"].message_id].raw) == refused
            assert not session.scalars(
                select(Resource.id).where(Resource.message_id == results["refused"].message_id)
            ).all()
        report = verify(session)
        assert report.ok, report.findings
        # each caller's audit records carry its own request id, and no other caller's
        owners: dict[str, set[str]] = {}
        for name, result in results.items():
            owners.setdefault(result.message_id, set()).add(name)
        records = session.scalars(select(AuditRecord)).all()
        for name, result in results.items():
            assert any(
                r.request_id == name and r.message_id == result.message_id for r in records
            ), name
        for record in records:
            if record.request_id is not None and record.message_id in owners:
                assert record.request_id in owners[record.message_id], record.action
        duplicates = [
            r for r in records if r.action == "message.received" and r.request_id == "sent-before"
        ]
        assert [r.message_id for r in duplicates] == [before.message_id]


def test_a_group_is_at_most_max_group_documents(
    session_factory: sessionmaker[Session], engine: Engine
) -> None:
    pipeline = example_pipeline(session_factory)
    pipeline.group_commit.max_group = 3
    documents = {f"r{n}": long_oru(control=f"MAXG000{n}") for n in range(6)}
    outcomes = _grouped(engine, pipeline.group_commit, documents)
    assert {_result(o).status for o in outcomes.values()} == {"processed"}
    # the first alone, then 3 of the 5 queued, then the last 2
    assert pipeline.group_commit.groups == 2
    assert pipeline.group_commit.grouped == 5


def _database_down(engine: Engine) -> None:
    """From now on every commit that writes an audit record fails, as a database that
    went away at the commit would."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(
                text(
                    "CREATE FUNCTION test_down() RETURNS trigger AS $$ BEGIN "
                    "RAISE EXCEPTION 'down' USING ERRCODE = '08006'; END $$ LANGUAGE plpgsql"
                )
            )
            conn.execute(
                text(
                    "CREATE TRIGGER test_down BEFORE INSERT ON audit_record "
                    "FOR EACH ROW EXECUTE FUNCTION test_down()"
                )
            )
        else:
            conn.execute(
                text(
                    "CREATE TRIGGER test_down BEFORE INSERT ON audit_record "
                    "BEGIN SELECT RAISE(ABORT, 'down'); END"
                )
            )


def _database_up(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("DROP TRIGGER test_down" + (" ON audit_record" if _pg(engine) else "")))
        if _pg(engine):
            conn.execute(text("DROP FUNCTION test_down()"))


def _pg(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def test_nothing_is_answered_that_the_group_did_not_commit(
    session_factory: sessionmaker[Session], engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    pipeline = example_pipeline(session_factory)
    documents = {f"d{n}": long_oru(control=f"DOWN000{n}") for n in range(4)}
    documents["garbage"] = GARBAGE
    _database_down(engine)
    try:
        outcomes = _grouped(engine, pipeline.group_commit, documents)
    finally:
        _database_up(engine)
    assert "group commit: a group of 4 failed" in caplog.text  # the group was tried
    # every caller was told it failed (HTTP 5xx, no MLLP ACK): none got a result
    assert all(isinstance(o, BaseException) for o in outcomes.values()), outcomes
    with session_factory() as session:
        assert session.scalars(select(InboundMessage.id)).all() == []
        assert session.scalars(select(Resource.id)).all() == []
    # the database back, the same documents are new (nothing was half kept) and each
    # gets its answer
    again = _grouped(engine, pipeline.group_commit, documents)
    assert {n: (_result(o).status, _result(o).duplicate) for n, o in again.items()} == {
        **{f"d{n}": ("processed", False) for n in range(4)},
        "garbage": ("quarantined", False),
    }
    with session_factory() as session:
        assert len(session.scalars(select(InboundMessage.id)).all()) == 5
        assert verify(session).ok


def test_grouping_off_and_a_lone_caller_take_the_single_path(
    session_factory: sessionmaker[Session],
) -> None:
    pipeline = example_pipeline(session_factory)
    raw = long_oru(control="LONE0001")
    alone = pipeline.group_commit.ingest(raw, Receipt("std-hl7v2", "http"))
    assert (alone.status, alone.duplicate) == ("processed", False)
    again = pipeline.group_commit.ingest(raw, Receipt("std-hl7v2", "http"))
    assert (again.duplicate, again.message_id) == (True, alone.message_id)
    assert pipeline.group_commit.groups == 0
    off = Pipeline.of(pipeline.translator, session_factory)
    off.group_commit.max_group = 0
    other = off.group_commit.ingest(long_oru(control="LONE0002"), Receipt("std-hl7v2", "http"))
    assert other.status == "processed"
    with pytest.raises(Exception, match="nobody"):
        pipeline.group_commit.ingest(raw, Receipt("nobody", "http"))


def test_mllp_connections_sending_at_once_are_grouped_and_each_acked_its_own(
    session_factory: sessionmaker[Session], engine: Engine
) -> None:
    pipeline = example_pipeline(session_factory)
    earlier = long_oru(control="MLLP0000")
    pipeline.ingest(earlier, Receipt("std-hl7v2", "mllp"))
    frames = {
        "MLLP0009": long_oru(control="MLLP0009"),  # the first: alone, behind the held lock
        "MLLP0001": long_oru(control="MLLP0001"),
        "MLLP0002": long_oru(control="MLLP0002"),
        "MLLP0000": earlier,  # sent again
        "BAD0014": (BAD / "bad-segment-name.hl7").read_bytes(),
    }
    listener = _listener(pipeline)
    port = listener.start(pipeline)
    answers: dict[str, bytes | None] = {}

    def send(name: str) -> None:
        [answers[name]] = _exchange(port, frames[name], timeout=120)

    names = list(frames)
    threads = {n: threading.Thread(target=send, args=(n,)) for n in names}
    try:
        with _held(engine):
            threads[names[0]].start()
            _until(lambda: pipeline.group_commit._leading, "the first frame leads")
            for name in names[1:]:
                threads[name].start()
            _until(lambda: pipeline.group_commit.waiting == len(names) - 1, "all queued")
        for thread in threads.values():
            thread.join(120)
    finally:
        listener.stop()
    acks = {name: read_ack(a) for name, a in answers.items() if a is not None}
    assert {n: (a.code, a.control_id) for n, a in acks.items()} == {
        "MLLP0009": ("AA", "MLLP0009"),
        "MLLP0001": ("AA", "MLLP0001"),
        "MLLP0002": ("AA", "MLLP0002"),
        "MLLP0000": ("AA", "MLLP0000"),
        "BAD0014": ("AE", "BAD0014"),
    }
    assert (pipeline.group_commit.groups, pipeline.group_commit.grouped) == (1, 4)
    with session_factory() as session:
        assert len(session.scalars(select(InboundMessage.id)).all()) == 5


def test_a_group_waits_for_a_document_announced_and_not_for_one_withdrawn(
    session_factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    # a long bound, so that what the test shows is what the group waits for, not how fast
    # the machine translates
    monkeypatch.setattr(group_module, "ARRIVAL_WAIT_SECONDS", 120.0)
    pipeline = example_pipeline(session_factory)
    group = pipeline.group_commit
    answers: dict[str, IngestResult] = {}

    def lead(name: str) -> None:
        answers[name] = group.ingest(long_oru(control=name), Receipt("std-hl7v2", "http"))

    announced = group.arrive()  # a request whose body is still being read
    leader = threading.Thread(target=lead, args=("ARRV0001",))
    leader.start()
    _until(lambda: group._leading and group.waiting == 1, "the leader waits for it")
    late = group.ingest(long_oru(control="ARRV0002"), Receipt("std-hl7v2", "http"), announced)
    leader.join(120)
    assert late.status == answers["ARRV0001"].status == "processed"
    assert (group.groups, group.grouped) == (1, 2)  # stored together
    withdrawn = group.arrive()  # e.g. refused as oversize: it will never be queued
    leader = threading.Thread(target=lead, args=("ARRV0003",))
    leader.start()
    _until(lambda: group._leading and group.waiting == 1, "the leader waits for it")
    withdrawn.close()
    leader.join(120)
    assert not leader.is_alive() and answers["ARRV0003"].status == "processed"
    assert (group.groups, group.grouped) == (1, 2)  # stored alone

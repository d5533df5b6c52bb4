"""Answering on receipt, then draining (decision 0063, adapter/pipeline/on_receipt.py and
drain.py).

The same bytes received on receipt and drained must end exactly as the synchronous path
leaves them (resources, versions, index rows, outbox rows, identity, statuses, issues, the
audit events of each message); a bad message in a drained batch costs the others nothing;
a drain that dies leaves its messages to the next one; two drains on PostgreSQL never store
a message twice; a synchronous request's message is never the drain's. Runs on SQLite and,
in the ``-m db`` pass, on PostgreSQL.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

import adapter.pipeline.drain as drain_module
from adapter.audit.context import Caller, serving
from adapter.audit.verify import verify
from adapter.errors import UnknownSourceError
from adapter.oversize import Oversize
from adapter.pipeline import IngestResult, steps
from adapter.pipeline.drain import (
    DRAIN_THREAD,
    Drainer,
    backlog,
    drain,
    drain_batch,
    wait_drained,
)
from adapter.pipeline.receipt import Receipt
from adapter.store import make_engine, migrate
from adapter.store import session_factory as make_factory
from adapter.store.audit_log import AuditRecord
from adapter.store.models import InboundMessage, Resource
from tests.integration.connector_helpers import example_pipeline
from tests.integration.referral_support import pipeline_for
from tests.integration.test_bulk_ingest import _fixtures, _routed, _stored
from tests.integration.test_long_values import (
    _assert_located,
    _refused_oru,
    long_oru,
    refusing_database,  # noqa: F401  (a fixture, found by its name)
)

GARBAGE = b"MSH|^~\\&|broken\rPID|1\rOBX|cut off"


def _inputs() -> list[tuple[bytes, Receipt]]:
    """Reports (some with warnings), garbage, and the same bytes twice."""
    items = _fixtures()
    items.append((GARBAGE, Receipt("std-hl7v2", "http")))
    items.append(items[3])  # sent again: a duplicate
    return items


def _messages(factory: sessionmaker[Session]) -> list[tuple[Any, ...]]:
    """Each message's final state and audit events, in the order received, without ids."""
    with factory() as session:
        rows = session.scalars(
            select(InboundMessage).order_by(InboundMessage.received_at, InboundMessage.sha256)
        ).all()
        events: dict[str, list[tuple[Any, ...]]] = {}
        for record in session.scalars(select(AuditRecord).order_by(AuditRecord.seq)):
            if record.message_id is not None:
                events.setdefault(record.message_id, []).append(
                    (record.action, record.outcome, record.actor, record.facility, record.channel)
                )
        return [
            (
                m.status,
                m.detected_format,
                m.encoding,
                m.attempts,
                tuple(m.resources),
                tuple((i["severity"], i["code"], i.get("location")) for i in m.issues),
                # sorted: a duplicate answered before the drain comes before its translation
                tuple(sorted(events.get(m.id, []))),
            )
            for m in rows
        ]


def _answer(result: IngestResult) -> tuple[Any, ...]:
    return (result.status, result.duplicate, tuple(result.resources), len(result.issues))


def test_drained_messages_end_as_the_synchronous_path_leaves_them(
    session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    items = _inputs()
    config = _routed(tmp_path)  # destinations enabled: outbox rows are compared too
    pipeline = pipeline_for(config, session_factory)
    received = [pipeline.receive(raw, receipt) for raw, receipt in items]
    assert [r.status for r in received[:-1]] == ["received"] * (len(items) - 1)
    # the bytes sent again are answered with the earlier message, still received
    assert (received[-1].duplicate, received[-1].message_id) == (True, received[3].message_id)
    with session_factory() as session:
        assert backlog(session).count == len(items) - 1
    settled = {r.message_id: r for r in drain_batch(pipeline, 7)}
    assert len(settled) == 7  # at most a batch
    assert drain(pipeline, batch=7) == len(items) - 1 - 7
    with session_factory() as session:
        assert backlog(session).count == 0
        assert verify(session).ok

    sync_engine = make_engine(f"sqlite:///{tmp_path / 'sync.db'}")
    migrate(sync_engine)
    try:
        sync_factory = make_factory(sync_engine)
        sync = pipeline_for(config, sync_factory)
        answers = [sync.ingest(raw, receipt) for raw, receipt in items]
        statuses = Counter(a.status for a in answers)
        assert statuses["processed-with-warnings"] and statuses["quarantined"]
        # the answers a sender reads at /messages/{id} once drained: the synchronous ones
        with session_factory() as session:
            final = [session.get(InboundMessage, r.message_id) for r in received]
            assert [(m.status, tuple(m.resources)) for m in final] == [
                (a.status, tuple(a.resources)) for a in answers
            ]
        stored = _stored(session_factory)
        assert stored["outbox"]
        assert stored == _stored(sync_factory)
        assert _messages(session_factory) == _messages(sync_factory)
    finally:
        sync_engine.dispose()


def test_unknown_source_and_oversize_are_answered_as_on_the_synchronous_path(
    session_factory: sessionmaker[Session],
) -> None:
    pipeline = example_pipeline(session_factory)
    with pytest.raises(UnknownSourceError):
        pipeline.receive(long_oru(control="NOBODY01"), Receipt("nobody", "http"))
    big = long_oru(control="BIG00001")
    pipeline.max_bytes = len(big) - 1
    pipeline.keep_bytes = 100
    refused = pipeline.receive(big, Receipt("std-hl7v2", "http"))
    assert refused.status == "quarantined"
    assert any(i.code == "too-long" for i in refused.issues)
    again = pipeline.refuse_oversize(Oversize(big[:100], len(big)), Receipt("std-hl7v2", "http"))
    assert (again.duplicate, again.message_id) == (True, refused.message_id)
    with session_factory() as session:
        assert backlog(session).count == 0  # nothing for the drain
        assert session.scalars(select(InboundMessage.status)).all() == ["quarantined"]


def test_one_bad_message_in_a_drained_batch_costs_the_others_nothing(
    session_factory: sessionmaker[Session],
    refusing_database: None,  # noqa: F811
) -> None:
    pipeline = example_pipeline(session_factory)
    first, second = long_oru(control="DRAIN001"), long_oru(control="DRAIN002")
    refused = _refused_oru("DRAIN003")
    ids = [
        pipeline.receive(raw, Receipt("std-hl7v2", "http")).message_id
        for raw in (first, refused, GARBAGE, second)
    ]
    results = {r.message_id: r for r in drain_batch(pipeline, 10)}
    assert [results[i].status for i in ids] == [
        "processed",
        "quarantined",
        "quarantined",
        "processed",
    ]
    _assert_located(results[ids[1]].issues[0].as_dict())
    with session_factory() as session:
        assert backlog(session).count == 0
        assert not session.scalars(select(Resource.id).where(Resource.message_id == ids[1])).all()
        # the second is the same report again: its resources unchanged, the first's
        assert results[ids[3]].resources == results[ids[0]].resources
        assert session.scalars(select(Resource.id).where(Resource.message_id == ids[0])).all()
        report = verify(session)
        assert report.ok, report.findings
        events = Counter((r.message_id, r.action) for r in session.scalars(select(AuditRecord)))
        for i in (ids[0], ids[2], ids[3]):
            assert events[(i, "message.translated")] == 1
        # the refused one: its attempt in the batch rolled back with its savepoint; kept
        # alone as the synchronous path keeps it (quarantined, no translation event)
        assert events[(ids[1], "message.translated")] == 0
        assert events[(ids[1], "message.quarantined")] == 1
        assert events[(ids[1], "message.received")] == 1


class _Died(BaseException):
    """A drain killed in the middle of its batch (not an Exception: nothing catches it)."""


def test_a_drain_that_dies_leaves_its_messages_to_the_next(
    session_factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline = example_pipeline(session_factory)
    ids = [
        pipeline.receive(long_oru(control=f"DIED000{n}"), Receipt("std-hl7v2", "http")).message_id
        for n in range(4)
    ]
    real_store = steps.store
    calls = 0

    def dying(work: steps.Work) -> None:
        nonlocal calls
        calls += 1
        real_store(work)
        if calls == 3:
            raise _Died

    monkeypatch.setattr(steps, "store", dying)
    with pytest.raises(_Died):
        drain_batch(pipeline, 10)
    monkeypatch.setattr(steps, "store", real_store)
    with session_factory() as session:  # nothing of the dead batch was kept
        assert backlog(session).count == 4
        assert session.scalars(select(Resource.id)).all() == []
    assert {r.message_id: r.status for r in drain_batch(pipeline, 10)} == dict.fromkeys(
        ids, "processed"
    )
    with session_factory() as session:
        assert verify(session).ok
        translated = [
            r.message_id
            for r in session.scalars(select(AuditRecord))
            if r.action == "message.translated"
        ]
        assert sorted(translated) == sorted(ids)


def test_the_drain_never_takes_a_synchronous_request_s_message(
    session_factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline = example_pipeline(session_factory)
    real_store = steps.store
    seen: list[list[IngestResult]] = []

    def store_while_a_drain_looks(work: steps.Work) -> None:
        # the synchronous request's row is written, not yet committed: a drain in another
        # thread now finds nothing to take
        found: list[IngestResult] = []
        other = threading.Thread(target=lambda: found.extend(drain_batch(pipeline, 10)))
        other.start()
        other.join(60)
        seen.append(found)
        real_store(work)

    monkeypatch.setattr(steps, "store", store_while_a_drain_looks)
    result = pipeline.ingest(long_oru(control="SYNC0001"), Receipt("std-hl7v2", "http"))
    assert result.status == "processed"
    assert seen == [[]]
    with session_factory() as session:
        assert [
            r.action
            for r in session.scalars(select(AuditRecord).order_by(AuditRecord.seq))
            if r.message_id == result.message_id
        ].count("message.translated") == 1


def test_receipts_carry_their_caller_s_request_id(session_factory: sessionmaker[Session]) -> None:
    pipeline = example_pipeline(session_factory)
    raw = long_oru(control="CALLER01")
    with serving(Caller(request_id="first")):
        first = pipeline.receive(raw, Receipt("std-hl7v2", "http"))
    with serving(Caller(request_id="again")):
        again = pipeline.receive(raw, Receipt("std-hl7v2", "http"))
    assert (again.duplicate, again.message_id, again.status) == (True, first.message_id, "received")
    with session_factory() as session:
        received = [
            (r.request_id, r.message_id)
            for r in session.scalars(select(AuditRecord).order_by(AuditRecord.seq))
            if r.action == "message.received"
        ]
    assert received == [("first", first.message_id), ("again", first.message_id)]


def test_two_drains_never_store_a_message_twice(
    session_factory: sessionmaker[Session], engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("several drains at once: PostgreSQL (SQLite has one writer)")
    pipeline = example_pipeline(session_factory)
    ids = [
        pipeline.receive(long_oru(control=f"TWO{n:05d}"), Receipt("std-hl7v2", "http")).message_id
        for n in range(12)
    ]
    claimed = threading.Event()
    release = threading.Event()

    def held(real: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            # the first drain holds its claimed rows until the second one has drained (the
            # second translates them too, decision 0102, and skips them at its claim),
            # before it takes its batch's other locks (decision 0116) or stores
            if threading.current_thread().name == "first" and not claimed.is_set():
                claimed.set()
                assert release.wait(120)
            return real(*args, **kwargs)

        return call

    for name in ("_read_rows", "_store_jobs"):
        monkeypatch.setattr(drain_module.bulk, name, held(getattr(drain_module.bulk, name)))
    first: list[IngestResult] = []
    thread = threading.Thread(target=lambda: first.extend(drain_batch(pipeline, 5)), name="first")
    thread.start()
    assert claimed.wait(120)
    second = drain_batch(pipeline, 100)  # takes every row but the first drain's five
    release.set()
    thread.join(120)
    assert len(first) == 5 and len(second) == 7
    assert {r.message_id for r in first}.isdisjoint(r.message_id for r in second)
    assert {r.message_id for r in first + second} == set(ids)
    assert drain_batch(pipeline, 100) == []
    _assert_each_translated_once(session_factory, ids)


def test_the_background_drain_lets_a_burst_go_first_but_not_for_ever(
    session_factory: sessionmaker[Session],
) -> None:
    pipeline = example_pipeline(session_factory)
    drainer = Drainer(pipeline, batch=100, idle_seconds=0.2, defer_seconds=0.5)
    pipeline.receipts.on_received = drainer.wake
    drainer.start()
    try:
        assert drainer._thread is not None
        comm = Path(f"/proc/self/task/{drainer._thread.native_id}/comm")
        if comm.exists():  # Linux: the OS knows the thread by name (top -H; the benchmark)
            deadline = time.monotonic() + 10
            while comm.read_text().strip() != DRAIN_THREAD and time.monotonic() < deadline:
                time.sleep(0.01)
            assert comm.read_text().strip() == DRAIN_THREAD
        # receipts without a pause: the drain waits for one, but at most until the first
        # document waiting is defer_seconds old, so it drains while the burst goes on (as
        # long as it takes on a loaded machine: bounded by time, not by a number of receipts)
        drained_during = 0
        deadline = time.monotonic() + 90
        n = 0
        while not drained_during and time.monotonic() < deadline:
            pipeline.receive(long_oru(control=f"BURST{n:05d}"), Receipt("std-hl7v2", "http"))
            drained_during = drainer.drained
            n += 1
        assert drained_during, f"the drain never ran while {n} receipts kept coming"
        left = wait_drained(pipeline, 120)
        assert left.count == 0
    finally:
        drainer.stop()
    with session_factory() as session:
        assert verify(session).ok


def test_a_drain_with_translation_workers_stores_the_same(
    session_factory: sessionmaker[Session],
) -> None:
    pipeline = example_pipeline(session_factory)
    raws = [long_oru(control=f"POOL{n:04d}") for n in range(10)] + [GARBAGE]
    ids = [pipeline.receive(raw, Receipt("std-hl7v2", "http")).message_id for raw in raws]
    with pipeline.translation_workers(1):
        pool = pipeline.translation_pool
        assert pool is not None
        results = {r.message_id: r.status for r in drain_batch(pipeline, 100)}
        assert pool._executor is not None  # the batch was sent to the worker
    assert [results[i] for i in ids] == ["processed"] * 10 + ["quarantined"]
    with session_factory() as session:
        assert verify(session).ok
        formats = {m.detected_format for m in session.scalars(select(InboundMessage))}
        assert formats == {"hl7v2"}


def test_adapter_drain_stores_what_was_received(
    database_url: str, session_factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from adapter.cli import app
    from adapter.settings import get_settings

    pipeline = example_pipeline(session_factory)
    for raw in (long_oru(control="CLI00001"), long_oru(control="CLI00002"), GARBAGE):
        pipeline.receive(raw, Receipt("std-hl7v2", "http"))
    monkeypatch.setenv("ADAPTER_DATABASE_URL", database_url)
    monkeypatch.setenv("ADAPTER_TRANSLATE_WORKERS", "0")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["drain", "--batch", "2"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "drained: 2 processed, 1 quarantined; 0 still received" in result.output
    with session_factory() as session:
        assert backlog(session).count == 0


def test_the_defer_s_bound_counts_from_the_oldest_document_still_waiting(
    session_factory: sessionmaker[Session],
) -> None:
    """A full batch leaves older documents waiting: the next batch does not wait for a
    pause again (a steady flow got one batch per bound before, and its backlog grew)."""
    pipeline = example_pipeline(session_factory)
    for n in range(12):
        pipeline.receive(long_oru(control=f"STEADY{n:04d}"), Receipt("std-hl7v2", "http"))
    drainer = Drainer(pipeline, batch=5, defer_seconds=60)
    drainer.wake()
    oldest = time.monotonic() - 61  # the first one waiting is past the bound
    drainer._waiting_since = oldest
    drainer._last_receipt = time.monotonic() + 3600  # receipts keep arriving, no pause
    assert drainer.step() is True  # past the bound: drained at once, 5 of 12
    assert drainer._waiting_since == oldest  # 7 still wait, since then at least
    drainer.wake()  # another receipt: the bound still counts from the oldest
    done: list[bool] = []
    thread = threading.Thread(target=lambda: done.append(drainer.step()))
    thread.start()
    thread.join(30)  # deferred again, it would wait 60 s for a pause
    drainer.stop()
    thread.join(60)
    assert done == [True] and drainer.drained == 10
    assert drainer.step() is False  # the last 2: the backlog is empty, nothing kept
    assert drainer._waiting_since is None
    with session_factory() as session:
        assert backlog(session).count == 0


def test_translations_started_ahead_are_used_once_and_dropped_when_settled_elsewhere(
    session_factory: sessionmaker[Session], engine: Engine
) -> None:
    pipeline = example_pipeline(session_factory)
    ids = [
        pipeline.receive(long_oru(control=f"AHEAD{n:04d}"), Receipt("std-hl7v2", "http")).message_id
        for n in range(20)
    ]
    ahead: drain_module.Ahead = {}
    with pipeline.translation_workers(1):
        first = drain_batch(pipeline, 8, ahead=ahead)
        assert [r.message_id for r in first] == ids[:8]
        # both databases (decision 0102): the next 8 sent to the worker while the first 8
        # were stored
        assert list(ahead) == ids[8:16]
        # one of them settled by another drain meanwhile: its translation is dropped
        assert drain_module.settle_alone(pipeline, ids[9]) is not None
        second = drain_batch(pipeline, 8, ahead=ahead)
        assert [r.message_id for r in second] == ids[8:9] + ids[10:17]
        rest = drain_batch(pipeline, 8, ahead=ahead)
    assert [r.message_id for r in rest] == ids[17:]
    assert {r.status for r in first + second + rest} == {"processed"}
    _assert_drained_each_translated_once(session_factory, ids)


def test_translations_started_while_a_drain_gathers_are_those_its_batch_takes(
    session_factory: sessionmaker[Session], engine: Engine
) -> None:
    """Decision 0156: a drain without a defer, woken by receipts, sends what waits to its
    workers before it gathers more (``translate_ahead``); the batch then takes those
    translations, none made twice, and stores what it would have stored."""
    pipeline = example_pipeline(session_factory)
    receipt = Receipt("std-hl7v2", "http")
    ids = [
        pipeline.receive(long_oru(control=f"GATHER{n:04d}"), receipt).message_id for n in range(12)
    ]
    ahead: drain_module.Ahead = {}
    assert drain_module.translate_ahead(pipeline, 100, ahead) == 0  # no workers: nothing
    with pipeline.translation_workers(1):
        pool = pipeline.translation_pool
        assert pool is not None
        submitted: list[str] = []
        real = pool.submit_many

        def counting(items: list[tuple[bytes, str, str]]) -> Any:
            submitted.extend(message_id for _, _, message_id in items)
            return real(items)

        pool.submit_many = counting  # type: ignore[method-assign]
        assert drain_module.translate_ahead(pipeline, 10, ahead) == 10  # the oldest ten
        assert len(ahead) == 10 and set(ahead) < set(ids)
        assert drain_module.translate_ahead(pipeline, 10, ahead) == 0  # all sent already
        sent = dict(ahead)
        done = drain_batch(pipeline, 100, ahead=ahead)
        assert all(ahead.get(i) is None for i in ids)  # taken, nothing left ahead
    assert sorted(r.message_id for r in done) == sorted(ids)
    assert {r.status for r in done} == {"processed"}
    assert len(sent) == 10 and set(sent) < set(ids)
    assert sorted(submitted) == sorted(ids)  # each sent to the worker once
    _assert_drained_each_translated_once(session_factory, ids)


def test_a_drained_message_row_is_written_once_with_its_format_and_encoding(
    session_factory: sessionmaker[Session], engine: Engine
) -> None:
    """Decision 0076: the drain reopens each row in memory and writes its format, encoding
    and result in one UPDATE (not an ORM flush of the format first); a quarantined one too.
    On PostgreSQL the batch's UPDATEs are one executemany at its commit (decision 0116)."""
    from sqlalchemy import event

    pipeline = example_pipeline(session_factory)
    for n in range(3):
        pipeline.receive(long_oru(control=f"ONCE{n:04d}"), Receipt("std-hl7v2", "http"))
    pipeline.receive(GARBAGE, Receipt("std-hl7v2", "http"))
    updates: list[str] = []
    statements: list[str] = []

    def seen(
        _conn: Any, _cursor: Any, statement: str, params: Any, _context: Any, many: bool
    ) -> None:
        if statement.lstrip().upper().startswith("UPDATE INBOUND_MESSAGE"):
            statements.append(statement)
            updates.extend([statement] * (len(params) if many else 1))  # a row each

    event.listen(engine, "before_cursor_execute", seen)
    try:
        settled = drain_batch(pipeline, 10)
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert sorted(r.status for r in settled) == ["processed"] * 3 + ["quarantined"]
    assert len(updates) == 4
    assert len(statements) == (1 if engine.dialect.name == "postgresql" else 4)
    assert all("detected_format" in u and "status" in u for u in updates)
    with session_factory() as session:
        rows = session.scalars(select(InboundMessage)).all()
        assert {(m.status, m.detected_format, m.encoding is not None) for m in rows} == {
            ("processed", "hl7v2", True),
            ("quarantined", "hl7v2", False),  # garbage: no encoding told (as synchronously)
        }


def test_the_drain_stores_a_batch_at_once_and_again_in_savepoints_when_one_fails(
    session_factory: sessionmaker[Session],
    engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Decision 0116: the drain makes no savepoint a message (on PostgreSQL it also takes
    its batch's locks and rows at its start); a message failing there rolls the batch back,
    and the batch is stored again a savepoint a message, each message once."""
    from sqlalchemy import event

    pipeline = example_pipeline(session_factory)
    ids = [
        pipeline.receive(long_oru(control=f"ONCE{n:04d}"), Receipt("std-hl7v2", "http")).message_id
        for n in range(6)
    ]
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement.lstrip().split(None, 1)[0].upper())

    event.listen(engine, "before_cursor_execute", count)
    try:
        first = drain_batch(pipeline, 3)
        assert [r.status for r in first] == ["processed"] * 3
        assert "SAVEPOINT" not in statements  # stored at once
        statements.clear()

        real_store = steps.store
        failed: list[str] = []

        def failing_once(work: steps.Work) -> None:
            if work.message.id == ids[4] and not failed:
                failed.append(work.message.id)
                raise RuntimeError("a bug, once")
            real_store(work)

        monkeypatch.setattr(steps, "store", failing_once)
        with caplog.at_level("INFO", logger="adapter.pipeline.drain"):
            second = drain_batch(pipeline, 3)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert failed == [ids[4]]
    assert "stored again, each message in a savepoint of its own" in caplog.text
    assert statements.count("SAVEPOINT") == 3  # the second attempt: one a message
    assert {r.message_id: r.status for r in second} == dict.fromkeys(ids[3:], "processed")
    with session_factory() as session:
        assert backlog(session).count == 0
        assert verify(session).ok
        events = Counter(
            (r.message_id, r.action)
            for r in session.scalars(select(AuditRecord))
            if r.action == "message.translated"
        )
        assert events == {(i, "message.translated"): 1 for i in ids}
        # the same report six times: the later ones stored the first one's resources again
        assert len({tuple(r.resources) for r in first + second}) == 1


def test_a_group_of_receipts_inserts_its_rows_in_one_statement(
    session_factory: sessionmaker[Session], engine: Engine
) -> None:
    """Decision 0116: the receipts of a group are inserted together (one round trip on
    PostgreSQL), before the commit writes their audit records; each caller still gets its
    own message, committed, and a duplicate in the group is answered with the earlier one."""
    import contextvars
    import hashlib

    from sqlalchemy import event

    from adapter.pipeline.on_receipt import _Pending

    pipeline = example_pipeline(session_factory)
    earlier = pipeline.receive(long_oru(control="GROUP000"), Receipt("std-hl7v2", "http"))
    facility, source = pipeline.translator.source("std-hl7v2")
    raws = [long_oru(control=f"GROUP{n:03d}") for n in range(4)]  # GROUP000: a duplicate
    group = [
        _Pending(
            raw,
            Receipt("std-hl7v2", "http"),
            facility,
            source,
            (source.id, hashlib.sha256(raw).hexdigest()),
            contextvars.copy_context(),
        )
        for raw in raws
    ]
    inserts: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "inbound_message" in statement and statement.lstrip().upper().startswith("INSERT"):
            inserts.append(statement)
        if "COPY" in statement.upper() and "inbound_message" in statement:
            inserts.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        pipeline.receipts._commit(group)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert len(inserts) == 1
    results = [p.result for p in group]
    assert results[0] is not None and results[0].duplicate
    assert results[0].message_id == earlier.message_id
    assert all(r is not None and r.status == "received" and not r.duplicate for r in results[1:])
    with session_factory() as session:
        assert backlog(session).count == 4  # the earlier one and the group's three
        assert verify(session).ok
        received = Counter(
            r.message_id
            for r in session.scalars(select(AuditRecord))
            if r.action == "message.received"
        )
        assert received[earlier.message_id] == 2  # its own and the duplicate's
        assert all(received[r.message_id] == 1 for r in results[1:] if r is not None)


def _assert_drained_each_translated_once(
    session_factory: sessionmaker[Session], ids: list[str]
) -> None:
    """Nothing waits, the audit chain holds, and each message was translated once."""
    with session_factory() as session:
        assert backlog(session).count == 0
    _assert_each_translated_once(session_factory, ids)


def _assert_each_translated_once(session_factory: sessionmaker[Session], ids: list[str]) -> None:
    """The audit chain holds, and each message was translated once."""
    with session_factory() as session:
        assert verify(session).ok
        translated = Counter(
            r.message_id
            for r in session.scalars(select(AuditRecord))
            if r.action == "message.translated"
        )
        assert translated == dict.fromkeys(ids, 1)

"""Idle delivery workers (decision 0040, 2026-12-04): after a pass that claimed nothing the
worker waits longer and longer (jittered), never past the next retry or lease expiry, and
on PostgreSQL a queued row wakes it through LISTEN/NOTIFY (only once its transaction has
committed). Nothing here measures time: the waits are computed, and the waits on events
have generous guards only so that a broken wake-up fails instead of hanging."""

from __future__ import annotations

import queue as queues
import threading
from datetime import timedelta

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session, sessionmaker

from adapter.delivery.worker import BatchReport, DeliveryWorker, WorkerOptions
from adapter.store import outbox
from adapter.store.models import Outbox
from adapter.store.outbox import wake
from tests.integration.delivery_receiver import Receiver
from tests.integration.delivery_support import (
    DEST,
    T0,
    Clock,
    observation,
    queue,
    store_named,
    worker,
)

GUARD = 30.0  # seconds before a wait that should end at once is called a failure


class _Listening:
    listening = True


def _idle_worker(session_factory: sessionmaker[Session], *, listening: bool) -> DeliveryWorker:
    w = DeliveryWorker(
        session_factory,
        {},
        {},
        worker_id="w",
        options=WorkerOptions(poll_seconds=1.0, idle_first_seconds=0.05, idle_max_seconds=30.0),
        clock=Clock(),
    )
    if listening:
        w._listener = _Listening()  # type: ignore[assignment]
    return w


def test_idle_waits_double_up_to_the_cap_with_jitter(
    session_factory: sessionmaker[Session],
) -> None:
    polling = _idle_worker(session_factory, listening=False)
    listening = _idle_worker(session_factory, listening=True)
    idle = BatchReport(DEST)
    for n in range(12):
        full = min(0.05 * 2**n, 1.0)
        assert full * 0.5 <= polling.idle_wait(idle, n) <= full  # SQLite: at most poll
        full = min(0.05 * 2**n, 30.0)
        assert full * 0.5 <= listening.idle_wait(idle, n) <= full  # woken by NOTIFY
    # a paused or open destination: rows queued do not make it sendable, so poll
    assert listening.idle_wait(BatchReport(DEST, admission="wait"), 20) <= 1.0
    waits = {round(listening.idle_wait(idle, 20), 6) for _ in range(20)}
    assert len(waits) > 1  # jittered: workers idling together do not claim together


def test_idle_wait_ends_when_a_retry_or_an_expired_lease_falls_due(
    session_factory: sessionmaker[Session],
) -> None:
    w = _idle_worker(session_factory, listening=True)
    soon = BatchReport(DEST, next_due=T0 + timedelta(seconds=2))
    assert 2.0 <= w.idle_wait(soon, 20) <= 2.02
    later = BatchReport(DEST, next_due=T0 + timedelta(hours=1))
    assert w.idle_wait(later, 20) <= 30.0


def test_next_due_is_the_earliest_future_retry_or_lease_end(
    session_factory: sessionmaker[Session],
) -> None:
    ids = queue(session_factory, [observation(f"o{n}", f"p{n}", "v1") for n in range(3)])
    with session_factory.begin() as session:
        assert outbox.next_due(session, destination=DEST, now=T0) is None  # all due now
        session.execute(
            Outbox.__table__.update()
            .where(Outbox.id == ids[0])
            .values(next_attempt_at=T0 + timedelta(seconds=90))
        )
        session.execute(
            Outbox.__table__.update()
            .where(Outbox.id == ids[1])
            .values(state="in-flight", claimed_by="x", claimed_until=T0 + timedelta(seconds=40))
        )
    with session_factory() as session:
        assert outbox.next_due(session, destination=DEST, now=T0) == T0 + timedelta(seconds=40)
        assert outbox.next_due(
            session, destination=DEST, now=T0 + timedelta(seconds=50)
        ) == T0 + timedelta(seconds=90)
        assert outbox.next_due(session, destination="other", now=T0) is None


def _listening(engine: Engine) -> tuple[outbox.Listener, queues.Queue[str | None], threading.Event]:
    woken: queues.Queue[str | None] = queues.Queue()
    stop = threading.Event()
    listener = outbox.Listener(engine, woken.put, stop).start()
    assert woken.get(timeout=GUARD) is None  # listening: everything is looked at once
    return listener, woken, stop


def test_a_committed_enqueue_wakes_the_listener_a_rolled_back_one_does_not(
    engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's (SQLite workers poll)")
    listener, woken, stop = _listening(engine)
    try:
        with session_factory() as session:  # rolled back: no row, no wake-up
            queue_rows = [
                {
                    "destination": "never",
                    "resource_type": "Observation",
                    "resource_id": "x",
                    "version_id": 1,
                    "patient_key": None,
                }
            ]
            store_named(session, queue_rows)  # an outbox row names a stored resource
            outbox.enqueue_many(session, queue_rows, now=T0)
            session.rollback()
        queue(session_factory, [observation("o1", "p1", "v1")])
        assert woken.get(timeout=GUARD) == DEST  # the committed one, not "never"
        assert woken.empty()
        with session_factory.begin() as session:  # a replay wakes too
            row_id = session.scalar(select(Outbox.id))
            session.execute(
                Outbox.__table__.update().where(Outbox.id == row_id).values(state="dead")
            )
        with session_factory.begin() as session:
            outbox.replay_one(session, row_id, now=T0)
        assert woken.get(timeout=GUARD) == DEST
    finally:
        stop.set()
        listener.join(GUARD)
    assert not listener.thread.is_alive()


def test_another_schemas_notifications_do_not_wake_the_listener(
    engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    """The channel is the database's: a notification of another schema (another
    deployment, a parallel test worker) is not this worker's."""
    if engine.dialect.name != "postgresql":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's (SQLite workers poll)")
    listener, woken, stop = _listening(engine)
    try:
        with engine.begin() as connection:  # delivered before the queue's own, if at all
            connection.execute(
                text("SELECT pg_notify(:channel, :payload)"),
                {"channel": wake.CHANNEL, "payload": f"elsewhere{wake.SEPARATOR}{DEST}"},
            )
        queue(session_factory, [observation("o1", "p1", "v1")])
        assert woken.get(timeout=GUARD) == DEST
        assert woken.empty()
    finally:
        stop.set()
        listener.join(GUARD)


def test_a_running_worker_idles_long_and_delivers_what_is_queued(
    engine: Engine, session_factory: sessionmaker[Session], receiver: Receiver
) -> None:
    """poll and idle caps of an hour: without the wake-up the row would wait that long."""
    if engine.dialect.name != "postgresql":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's (SQLite workers poll)")
    w = worker(session_factory, receiver.base_url)
    w.options = WorkerOptions(poll_seconds=3600, idle_first_seconds=3600, idle_max_seconds=3600)
    stop = threading.Event()
    thread = threading.Thread(target=w.run, args=(stop,), daemon=True)
    thread.start()
    try:
        for n in range(2):  # idle at once (first wait: an hour), then queued rows
            queue(session_factory, [observation(f"o{n}", f"p{n}", "v1")])
            received = threading.Event()
            for _ in range(int(GUARD / 0.05)):
                if f"Observation/o{n}" in receiver.refs():
                    received.set()
                    break
                threading.Event().wait(0.05)
            assert received.is_set(), f"o{n} was not delivered: the worker was not woken"
    finally:
        stop.set()
        thread.join(GUARD)
    assert not thread.is_alive()  # stop ends an hour's idle wait too

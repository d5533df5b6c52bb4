"""The outbox retention (decision 0064): only delivered rows settled before the cut-off are
deleted, with their attempts, in batches; a count changes nothing; sequence numbers go on
after a prune and a changed resource is delivered once; the periodic prune runs in the one
process holding the lease."""

from __future__ import annotations

import json
import time
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from adapter.delivery.retention import LEASE, PeriodicPrune, prune, start_periodic
from adapter.settings import Settings
from adapter.store import outbox, save_resources
from adapter.store.audit_log import AuditRecord
from adapter.store.models import (
    DeliveredMessage,
    DeliveryAttempt,
    DeliveryDestination,
    InboundMessage,
    Outbox,
    SyncLease,
)
from adapter.store.outbox import Settlement, claim, settle_many
from adapter.store.outbox.acks import acknowledgements
from tests.integration.delivery_receiver import Receiver
from tests.integration.delivery_support import (
    DEST,
    T0,
    Clock,
    attempts,
    observation,
    queue,
    rows,
    worker,
)

DAY = timedelta(days=1)


def _count(factory: sessionmaker[Session], table: type) -> int:
    with factory() as session:
        return int(session.scalar(select(func.count()).select_from(table)) or 0)


def _settle(factory: sessionmaker[Session], ids: list[int], outcomes: dict[int, str], at) -> None:  # type: ignore[no-untyped-def]
    """Claim ``ids`` at ``at`` and settle those named in ``outcomes`` (the others stay in
    flight), through the worker's own repository functions."""
    with factory.begin() as session:
        outbox.ensure(session, DEST, at)
        claimed = claim(session, destination=DEST, worker="w", now=at, lease_seconds=600, limit=50)
    by_id = {r.id: r for r in claimed}
    assert set(ids) <= set(by_id)
    batch = []
    for row_id, outcome in outcomes.items():
        extra = {"next_attempt_at": at + DAY * 30} if outcome == "retry" else {}
        batch.append(Settlement(by_id[row_id], outcome, at, status="200", sent_version=1, **extra))
    with factory.begin() as session:
        settle_many(session, batch, worker="w")


def test_only_delivered_rows_settled_before_the_cutoff_go_and_their_attempts_with_them(
    session_factory: sessionmaker[Session],
) -> None:
    ids = queue(session_factory, [observation(f"o{n}", f"p{n}", "v1") for n in range(5)])
    old = T0 + timedelta(seconds=1)
    # o0, o1 delivered; o2 dead; o3 to retry (pending); o4 stays in flight
    _settle(
        session_factory,
        ids,
        {ids[0]: "delivered", ids[1]: "delivered", ids[2]: "dead", ids[3]: "retry"},
        old,
    )
    recent_at = T0 + 10 * DAY
    [recent] = queue(session_factory, [observation("o5", "p5", "v1")], now=recent_at)
    _settle(session_factory, [recent], {recent: "delivered"}, recent_at)
    before = rows(session_factory)
    assert [before[i].state for i in [*ids, recent]] == [
        "delivered",
        "delivered",
        "dead",
        "pending",
        "in-flight",
        "delivered",
    ]
    assert _count(session_factory, DeliveryAttempt) == 5

    cutoff = T0 + 5 * DAY
    with session_factory() as session:
        counted = outbox.count_prunable(session, cutoff)
    assert (counted.rows, counted.attempts) == (2, 2)
    assert _count(session_factory, Outbox) == 6  # counting deleted nothing

    done = prune(session_factory, cutoff=cutoff, batch=100)
    assert (done.rows, done.attempts, done.batches) == (2, 2, 1)
    after = rows(session_factory)
    assert sorted(after) == [ids[2], ids[3], ids[4], recent]
    assert [after[i].state for i in sorted(after)] == ["dead", "pending", "in-flight", "delivered"]
    assert attempts(session_factory, ids[0]) == [] and attempts(session_factory, ids[1]) == []
    assert len(attempts(session_factory, ids[2])) == 1  # the dead letter keeps its history
    assert len(attempts(session_factory, recent)) == 1
    with session_factory() as session:
        assert outbox.pruned_totals(session) == {DEST: 2}
    # nothing more to do at the same cut-off
    assert prune(session_factory, cutoff=cutoff, batch=100).rows == 0


def test_a_prune_of_more_rows_than_one_batch_takes_several_short_transactions(
    session_factory: sessionmaker[Session],
) -> None:
    ids = queue(session_factory, [observation(f"o{n}", f"p{n}", "v1") for n in range(25)])
    _settle(session_factory, ids, dict.fromkeys(ids, "delivered"), T0)
    done = prune(session_factory, cutoff=T0 + DAY, batch=10)
    assert (done.rows, done.attempts, done.batches) == (25, 25, 3)
    assert _count(session_factory, Outbox) == 0
    assert _count(session_factory, DeliveryAttempt) == 0
    with session_factory() as session:
        destination = session.get(DeliveryDestination, DEST)
        assert destination is not None and destination.pruned_total == 25
        # one audit record for the prune, with its counts
        [record] = session.scalars(
            select(AuditRecord).where(AuditRecord.action == "delivery.pruned")
        ).all()
    body = json.loads(record.body)
    assert (record.actor, body["detail"]["rows"], body["detail"]["attempts"]) == ("cli", 25, 25)


def test_after_a_prune_sequence_numbers_go_on_and_a_changed_resource_is_sent_once(
    session_factory: sessionmaker[Session], receiver: Receiver
) -> None:
    clock = Clock()
    delivery = worker(session_factory, receiver.base_url, clock=clock)
    first = [observation(f"o{n}", f"p{n}", "v1") for n in range(5)]
    queue(session_factory, first)
    delivery.drain()
    numbers = sorted(r.sequence for r in rows(session_factory).values())
    assert numbers == [1, 2, 3, 4, 5]
    assert len(receiver.requests) == 5

    clock.advance(40 * 86400)
    assert prune(session_factory, cutoff=clock.now - 30 * DAY, batch=2).rows == 5
    assert rows(session_factory) == {}

    # the same five again (one of them changed) and a new one: only what changed goes out
    again = [*first[:1], observation("o1", "p1", "v2"), *first[2:], observation("o9", "p9", "v1")]
    queue(session_factory, again, now=clock.now)
    delivery.drain()
    sent = [(p.ref, p.mark) for p in receiver.requests[5:]]
    assert sorted(sent) == [("Observation/o1", "v2"), ("Observation/o9", "v1")]
    assert sorted(r.sequence for r in rows(session_factory).values()) == [6, 7]
    with session_factory() as session:
        last = session.scalar(select(DeliveryDestination.last_sequence))
    assert last == 7


def test_pruned_messages_stay_acknowledged_to_the_reconciliation(
    session_factory: sessionmaker[Session], receiver: Receiver
) -> None:
    """Through a message's rows: ``acknowledgements`` says the same before and after."""
    ids = _message_rows(session_factory, ["m1", "m2"])
    clock = Clock()
    worker(session_factory, receiver.base_url, clock=clock).drain()
    with session_factory() as session:
        before = acknowledgements(session, ["m1", "m2", "m3"])
    assert before == {"m1": {DEST: "delivered"}, "m2": {DEST: "delivered"}}
    assert prune(session_factory, cutoff=T0 + DAY, batch=1).rows == len(ids)
    with session_factory() as session:
        assert acknowledgements(session, ["m1", "m2", "m3"]) == before
    assert _count(session_factory, DeliveredMessage) == 2


def test_the_periodic_prune_runs_in_the_one_process_holding_the_lease(
    session_factory: sessionmaker[Session],
) -> None:
    ids = queue(session_factory, [observation(f"o{n}", f"p{n}", "v1") for n in range(3)])
    _settle(session_factory, ids, dict.fromkeys(ids, "delivered"), T0)
    clock = Clock(T0 + 40 * DAY)
    first, second = (
        PeriodicPrune(session_factory, days=30, minutes=60, batch=10, holder=h, clock=clock)
        for h in ("host-a:1", "host-b:2")
    )
    report = first.run_once()
    assert report is not None and report.rows == 3
    assert second.run_once() is None  # the lease is host-a's
    assert first.run_once() is not None  # ... renewed by its holder at every run
    clock.advance(3 * 3600 + 1)  # host-a stopped renewing: its lease ran out
    assert second.run_once() is not None
    assert first.run_once() is None
    second.stop()  # gives the lease back at once
    assert first.run_once() is not None
    with session_factory() as session:
        lease = session.get(SyncLease, LEASE)
        assert lease is not None and lease.holder == "host-a:1"


def test_the_periodic_prune_thread_prunes_and_is_off_when_the_retention_is_keep(
    session_factory: sessionmaker[Session], database_url: str
) -> None:
    off = Settings(database_url=database_url, outbox_retention_days="keep")  # type: ignore[arg-type]
    assert off.outbox_retention_days == 0
    assert start_periodic(session_factory, off, holder="h") is None
    on = start_periodic(session_factory, Settings(database_url=database_url), holder="h")
    assert on is not None and (on.days, on.seconds, on.batch) == (30, 3600, 1000)
    on.stop()

    ids = queue(session_factory, [observation("o0", "p0", "v1")])
    _settle(session_factory, ids, dict.fromkeys(ids, "delivered"), T0)
    running = PeriodicPrune(
        session_factory, days=1, minutes=60, batch=10, holder="h", first_seconds=0.01
    ).start()
    try:
        deadline = time.monotonic() + 20
        while rows(session_factory) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        running.stop()
    assert rows(session_factory) == {} and running.runs == 1


def _message_rows(factory: sessionmaker[Session], messages: list[str]) -> list[int]:
    """Two resources of each message queued with its id (as the pipeline does)."""
    ids: list[int] = []
    with factory.begin() as session:
        for n, message_id in enumerate(messages):
            session.add(
                InboundMessage(
                    id=message_id,
                    source_system="lis",
                    received_at=T0,
                    sha256=f"{n:064d}",
                    raw=b"x",
                    size=1,
                    status="processed",
                )
            )
    for n, message_id in enumerate(messages):
        made = [observation(f"{message_id}-{k}", f"p{n}", "v1") for k in range(2)]
        with factory.begin() as session:
            saved = save_resources(session, made, message_id=message_id, now=T0)
            outbox.enqueue_many(
                session,
                [
                    {
                        "destination": DEST,
                        "resource_type": s.resource_type,
                        "resource_id": s.id,
                        "version_id": s.version_id,
                        "patient_key": s.patient_key,
                        "message_id": message_id,
                    }
                    for s in saved
                ],
                now=T0,
            )
        ids += [r.id for r in rows(factory).values() if r.message_id == message_id]
    return ids

"""A patient's queued rows in one transaction (decision 0040, amended 2026-12-04 afternoon,
and decision 0070): a claim takes whole patient queues (up to half the claim per patient
while others wait) when the destination applies one request in order or not at all (a
FHIR transaction Bundle). What must hold:
per-patient order (nothing of a patient is sent after one of its rows failed and waits for
a retry), sequence numbers in queue order, retries, dead letters and coalescing as before.
A real loopback receiver answers; the clock is the test's. SQLite and PostgreSQL."""

from __future__ import annotations

import random

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from adapter.store.models import DeliveryAttempt, Outbox
from adapter.store.outbox import claim_queues
from tests.integration.delivery_receiver import Receiver, outcome
from tests.integration.delivery_support import (
    DEST,
    T0,
    Clock,
    observation,
    queue,
    rows,
    worker,
)
from tests.integration.test_delivery_claim import _queue, _set

SEQUENCE_URL = "https://yigongti-fhir-adapter.github.io/fhir/StructureDefinition/delivery-sequence"


def _numbers(entry: dict) -> list[int]:
    return [e["valueInteger"] for e in entry.get("extension") or [] if e["url"] == SEQUENCE_URL]


def _attempts(factory: sessionmaker[Session], row_id: int) -> int:
    with factory() as session:
        found = session.scalars(
            select(DeliveryAttempt.id).where(DeliveryAttempt.outbox_id == row_id)
        )
        return len(list(found))


def test_a_patients_queued_rows_go_in_one_transaction_numbered_in_queue_order(
    session_factory: sessionmaker[Session], receiver: Receiver
) -> None:
    ids = queue(
        session_factory,
        [observation(f"a{n}", "pa", "v1") for n in (1, 2, 3)]
        + [observation(f"b{n}", "pb", "v1") for n in (1, 2)],
    )
    w = worker(session_factory, receiver.base_url, clock=Clock(), bundle="transaction")

    reports = w.drain()

    assert [r.claimed for r in reports] == [5]  # before: 2, 2, 1 (one head per patient)
    assert receiver.bundles == [200]
    sent = [(e["request"]["url"], _numbers(e)) for e in receiver.entries]
    assert sent == [
        (f"Observation/{o}", [n]) for n, o in enumerate(["a1", "a2", "a3", "b1", "b2"], 1)
    ]
    assert {rows(session_factory)[i].state for i in ids} == {"delivered"}


def test_a_refused_transaction_sent_one_by_one_holds_a_patients_rows_behind_a_retry(
    session_factory: sessionmaker[Session], receiver: Receiver
) -> None:
    ids = queue(
        session_factory,
        [observation(f"a{n}", "pa", "v1") for n in (1, 2, 3)] + [observation("b1", "pb", "v1")],
    )
    # the transaction is refused (400: which entry is not said): one PUT each, and a2's
    # PUT meets a 503 the first time
    receiver.bundle_rule = lambda n: (400, {}, outcome("invalid", "one entry is bad"))
    receiver.rule = lambda t, i, body, n: (503, {}, None) if i == "a2" and n == 1 else None
    clock = Clock()
    w = worker(session_factory, receiver.base_url, clock=clock, bundle="transaction")

    w.drain()

    # a3 was not sent: it waits behind a2, untouched (no attempt, not in flight)
    assert [r.ref for r in receiver.requests] == [
        "Observation/a1",
        "Observation/a2",
        "Observation/b1",
    ]
    state = rows(session_factory)
    assert [state[i].state for i in ids] == ["delivered", "pending", "pending", "delivered"]
    a3 = state[ids[2]]
    assert (a3.attempts, a3.claimed_by, _attempts(session_factory, a3.id)) == (0, None, 0)
    assert a3.sequence == 3  # it keeps the number it was given, after a2's

    clock.advance(3)
    w.drain()
    sent = [r.ref for r in receiver.requests if 200 <= r.status < 300]
    assert sent == ["Observation/a1", "Observation/b1", "Observation/a2", "Observation/a3"]
    assert {r.state for r in rows(session_factory).values()} == {"delivered"}


def test_a_dead_row_does_not_hold_back_the_rows_behind_it_in_the_request(
    session_factory: sessionmaker[Session], receiver: Receiver
) -> None:
    ids = queue(session_factory, [observation(f"a{n}", "pa", "v1") for n in (1, 2, 3)])
    receiver.bundle_rule = lambda n: (422, {}, outcome("invalid", "bad"))
    receiver.rule = lambda t, i, body, n: (
        (422, {}, outcome("invalid", "bad")) if i == "a2" else None
    )
    w = worker(session_factory, receiver.base_url, clock=Clock(), bundle="transaction")

    w.drain()

    state = rows(session_factory)
    assert [state[i].state for i in ids] == ["delivered", "dead", "delivered"]
    assert receiver.refs() == ["Observation/a1", "Observation/a3"]


def test_a_failed_transaction_retries_the_patients_rows_together(
    session_factory: sessionmaker[Session], receiver: Receiver
) -> None:
    ids = queue(session_factory, [observation(f"a{n}", "pa", "v1") for n in (1, 2, 3)])
    receiver.bundle_rule = lambda n: (503, {}, None) if n == 1 else None
    clock = Clock()
    w = worker(session_factory, receiver.base_url, clock=clock, bundle="transaction")

    assert [r.claimed for r in w.drain()] == [3]
    state = rows(session_factory)
    assert [(state[i].state, state[i].attempts) for i in ids] == [("pending", 1)] * 3
    assert receiver.refs() == []

    clock.advance(3)
    assert [r.claimed for r in w.drain()] == [3]
    assert receiver.refs() == ["Observation/a1", "Observation/a2", "Observation/a3"]
    assert [rows(session_factory)[i].sequence for i in ids] == [1, 2, 3]  # kept on resend


def test_rows_behind_in_a_later_chunk_are_held_when_an_earlier_chunk_fails(
    session_factory: sessionmaker[Session], receiver: Receiver
) -> None:
    ids = queue(session_factory, [observation(f"a{n}", "pa", "v1") for n in (1, 2, 3)])
    receiver.bundle_rule = lambda n: (503, {}, None) if n == 1 else None
    clock = Clock()
    w = worker(session_factory, receiver.base_url, clock=clock, bundle="transaction")
    sender = w.destinations[DEST]  # the connector's chunks of 2: [a1, a2], [a3]
    sender.settings = sender.settings.model_copy(update={"batch_size": 2})  # type: ignore[attr-defined]

    w.drain()

    assert receiver.bundles == [503]  # the second chunk was not sent
    state = rows(session_factory)
    assert [(state[i].state, state[i].attempts) for i in ids] == [
        ("pending", 1),
        ("pending", 1),
        ("pending", 0),
    ]
    clock.advance(3)
    w.drain()
    assert receiver.refs() == ["Observation/a1", "Observation/a2", "Observation/a3"]


def test_whole_patient_queues_come_first_up_to_half_the_claim_each(
    session_factory: sessionmaker[Session], receiver: Receiver
) -> None:
    """Decision 0070 (amending 0040's "heads first, followers fill the room left"): a claim
    takes each patient's queue whole, so behind a backlog a message still goes out in one
    request; one patient gets at most half the claim while others wait."""
    queue(
        session_factory,
        [observation(f"{p}{n}", f"p{p}", "v1") for p in "abc" for n in range(3)]
        + [observation(f"d{n}", "pd", "v1") for n in range(5)],
    )
    w = worker(
        session_factory, receiver.base_url, clock=Clock(), bundle="transaction", batch_size=6
    )
    w.process(DEST)
    # before: the heads a0, b0, c0, d0, then a1, a2; now a's and b's queues whole
    assert receiver.refs() == [f"Observation/{p}{n}" for p in "ab" for n in range(3)]
    w.process(DEST)
    # c's queue (3) and d's share (half of 6: 3 rows), then d's rest in the next claim
    assert receiver.refs()[6:] == [
        "Observation/c0",
        "Observation/c1",
        "Observation/c2",
        "Observation/d0",
        "Observation/d1",
        "Observation/d2",
    ]
    assert [r.claimed for r in w.drain()] == [2]


def test_one_patients_long_queue_leaves_half_of_each_claim_to_the_others(
    session_factory: sessionmaker[Session], receiver: Receiver
) -> None:
    queue(
        session_factory,
        [observation(f"a{n}", "pa", "v1") for n in range(5)]
        + [observation(f"b{n}", "pb", "v1") for n in range(5)],
    )
    w = worker(
        session_factory, receiver.base_url, clock=Clock(), bundle="transaction", batch_size=4
    )
    w.process(DEST)
    assert receiver.refs() == [
        "Observation/a0",
        "Observation/a1",
        "Observation/b0",
        "Observation/b1",
    ]
    # then two more each, then the last one each (a patient alone fills the claim: above)
    assert [r.claimed for r in w.drain()] == [4, 2]


def test_a_batch_bundle_still_takes_one_row_per_patient(
    session_factory: sessionmaker[Session], receiver: Receiver
) -> None:
    queue(session_factory, [observation(f"a{n}", "pa", "v1") for n in (1, 2, 3)])
    w = worker(session_factory, receiver.base_url, clock=Clock(), bundle="batch")
    assert [r.claimed for r in w.drain()] == [1, 1, 1]


def test_versions_of_one_resource_behind_the_head_go_once_as_the_current_version(
    session_factory: sessionmaker[Session], receiver: Receiver
) -> None:
    ids = [
        *queue(session_factory, [observation("a1", "pa", "v1")]),
        *queue(session_factory, [observation("o1", "pa", "v1")]),
        *queue(session_factory, [observation("o1", "pa", "v2")]),
    ]
    w = worker(session_factory, receiver.base_url, clock=Clock(), bundle="transaction")
    w.drain()
    assert [(r.ref, r.mark) for r in receiver.requests] == [
        ("Observation/a1", "v1"),
        ("Observation/o1", "v2"),
    ]
    # o1's one entry carries both rows' numbers
    assert [_numbers(e) for e in receiver.entries] == [[1], [2, 3]]
    state = rows(session_factory)
    assert [(state[i].state, state[i].sent_version_id) for i in ids] == [
        ("delivered", 1),
        ("delivered", 2),
        ("delivered", 2),
    ]


# -- the rule, against a model -----------------------------------------------------------------

KINDS = ["pending-due", "pending-later", "in-flight", "in-flight-expired", "delivered", "dead"]


def _model(states: dict[int, tuple[str, str]], limit: int) -> list[int]:
    """What claim_queues must take: the due heads in id order, each with its unbroken run of
    due rows behind it up to half the claim (``limit // 2``, at least the head), until
    ``limit``; then, if every due head got its share, the rest of the runs in head order."""
    active = {i: s for i, s in states.items() if s[1] not in ("delivered", "dead")}
    due = {i for i, (_k, kind) in active.items() if kind in ("pending-due", "in-flight-expired")}
    heads: dict[str, int] = {}
    for i in sorted(active):
        heads.setdefault(active[i][0], i)
    runs: dict[int, list[int]] = {}
    for head in sorted(i for i in heads.values() if i in due):
        key = active[head][0]
        runs[head] = [head]
        for i in sorted(j for j in active if active[j][0] == key and j > head):
            if i not in due:
                break
            runs[head].append(i)
    share = max(1, limit // 2)
    taken: dict[int, int] = {}
    for head, run in runs.items():
        left = limit - sum(taken.values())
        if left <= 0:
            break
        taken[head] = min(len(run), share, left)
    for head in taken:
        taken[head] += min(len(runs[head]) - taken[head], limit - sum(taken.values()))
    return sorted(i for head, n in taken.items() for i in runs[head][:n])


def test_claim_queues_matches_the_model_on_random_queues(
    session_factory: sessionmaker[Session],
) -> None:
    rng = random.Random(14)
    for _round in range(10):
        with session_factory.begin() as session:
            session.execute(Outbox.__table__.delete())
        keys = [
            rng.choice(["Patient/p0", "Patient/p1", "Patient/p2", "Patient/p3"]) for _ in range(24)
        ]
        ids = _queue(session_factory, [(DEST, k) for k in keys])
        states: dict[int, tuple[str, str]] = {}
        for row_id, key in zip(ids, keys, strict=True):
            kind = rng.choice(KINDS)
            _set(session_factory, row_id, kind)
            states[row_id] = (key, kind)
        limit = rng.choice([1, 3, 6, 20])
        with session_factory.begin() as session:
            taken = claim_queues(
                session, destination=DEST, worker="w", now=T0, lease_seconds=60, limit=limit
            )
        got = [r.id for r in taken]
        assert got == _model(states, limit), (states, limit)
        after = rows(session_factory)
        assert all((after[i].state, after[i].claimed_by) == ("in-flight", "w") for i in got)


def test_a_retry_waiting_behind_the_head_keeps_the_rows_after_it_waiting(
    session_factory: sessionmaker[Session],
) -> None:
    ids = _queue(session_factory, [(DEST, "Patient/p1")] * 4)
    # the third row waits for a retry (e.g. the head was replayed from the dead letters
    # after it had failed): the run behind the head stops before it
    _set(session_factory, ids[2], "pending-later")
    with session_factory.begin() as session:
        taken = claim_queues(
            session, destination=DEST, worker="w", now=T0, lease_seconds=60, limit=4
        )
    assert [r.id for r in taken] == ids[:2]
    assert [rows(session_factory)[i].state for i in ids] == [
        "in-flight",
        "in-flight",
        "pending",
        "pending",
    ]


def test_a_row_changed_between_the_read_and_the_claim_gives_back_the_rows_after_it(
    session_factory: sessionmaker[Session],
) -> None:
    """The run behind a head is read, then claimed in one UPDATE that tests each row again.
    If a row of the run changed in between (another process settled it: now a retry waiting),
    it is not taken, and the rows after it are given back, not sent ahead of it."""
    from datetime import timedelta

    from sqlalchemy import event, update

    ids = _queue(session_factory, [(DEST, "Patient/p1")] * 4)
    with session_factory.begin() as session:
        connection = session.connection()
        changed: list[bool] = []

        @event.listens_for(connection, "before_execute")
        def meanwhile(conn, clause, *_args):  # type: ignore[no-untyped-def]
            # just before claim_queues' UPDATE (after its reads): the third row is settled
            # elsewhere as a retry waiting five minutes
            if changed or not str(clause).startswith("UPDATE outbox"):
                return
            changed.append(True)
            conn.execute(
                update(Outbox.__table__)
                .where(Outbox.__table__.c.id == ids[2])
                .values(next_attempt_at=T0 + timedelta(minutes=5))
            )

        taken = claim_queues(
            session, destination=DEST, worker="w", now=T0, lease_seconds=60, limit=4
        )
        event.remove(connection, "before_execute", meanwhile)
    assert changed
    assert [r.id for r in taken] == ids[:2]
    after = rows(session_factory)
    assert [(after[i].state, after[i].claimed_by) for i in ids] == [
        ("in-flight", "w"),
        ("in-flight", "w"),
        ("pending", None),  # changed meanwhile: waits for its retry
        ("pending", None),  # taken by the UPDATE, then given back: it must follow ids[2]
    ]

"""The delivery worker against a real FHIR destination (the FHIR REST connector) on a
loopback receiver: order per patient, poison items, retries, Retry-After, dead letters,
coalescing, leases. Time is a clock the test moves: nothing sleeps."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from adapter.connectors.base import CheckResult
from adapter.delivery.worker import DeliveryWorker
from adapter.outbound.base import DeliveryItem, ItemResult
from adapter.store.models import Outbox, Resource
from adapter.store.outbox import claim
from tests.integration.delivery_receiver import Receiver, outcome
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


def test_deliveries_about_one_patient_keep_their_order_while_one_waits_for_a_retry(
    session_factory: sessionmaker[Session], receiver: Receiver
) -> None:
    ids = queue(
        session_factory,
        [observation(f"a{n}", "pa", "v1") for n in (1, 2, 3)]
        + [observation(f"b{n}", "pb", "v1") for n in (1, 2)],
    )
    # a2 fails once (503): a3 must wait for it, patient b goes on
    receiver.rule = lambda t, i, body, n: (503, {}, None) if i == "a2" and n == 1 else None
    clock = Clock()
    w = worker(session_factory, receiver.base_url, clock=clock)
    reports = w.drain()

    assert receiver.refs() == ["Observation/a1", "Observation/b1", "Observation/b2"]
    assert all(r.claimed <= 2 for r in reports)  # at most one head per patient per batch
    state = rows(session_factory)
    assert [state[i].state for i in ids] == [
        "delivered",
        "pending",
        "pending",
        "delivered",
        "delivered",
    ]
    retry_at = state[ids[1]].next_attempt_at
    assert T0 + timedelta(seconds=1) <= retry_at <= T0 + timedelta(seconds=2)

    clock.advance(2)
    w.drain()
    sent = [r.ref for r in receiver.requests if r.ref.startswith("Observation/a")]
    assert sent == ["Observation/a1", "Observation/a2", "Observation/a2", "Observation/a3"]
    assert {r.state for r in rows(session_factory).values()} == {"delivered"}


def test_a_poison_item_dies_with_its_reason_and_blocks_nothing(
    session_factory: sessionmaker[Session], receiver: Receiver
) -> None:
    resources = [observation(f"o{n}", f"p{n % 3}", "v1") for n in range(9)]
    resources[4]["valueString"] = "poison"
    ids = queue(session_factory, resources)
    refusal = outcome("invariant", "obs-6: dataAbsentReason SHALL only be present if value[x]")
    receiver.rule = lambda t, i, body, n: (
        (422, {}, refusal) if body.get("valueString") == "poison" else None
    )
    w = worker(session_factory, receiver.base_url, clock=Clock())
    w.drain()

    state = rows(session_factory)
    poison = state[ids[4]]
    assert poison.state == "dead" and poison.last_status == "422"
    assert "422" in poison.last_error and "obs-6" in poison.last_error
    assert [state[i].state for i in ids if i != ids[4]] == ["delivered"] * 8
    # o7 is the same patient's (p1), queued behind the poison one: delivered all the same
    assert "Observation/o7" in receiver.refs()
    [attempt] = attempts(session_factory, ids[4])
    assert attempt.outcome == "dead" and attempt.status == "422"
    assert attempt.operation_outcome == refusal
    assert attempt.worker == "w1" and attempt.duration_ms > 0


def test_retry_then_success_records_every_attempt(
    session_factory: sessionmaker[Session], receiver: Receiver
) -> None:
    [oid] = queue(session_factory, [observation("o1", "p1", "v1")])
    receiver.rule = lambda t, i, body, n: (503, {}, None) if n <= 2 else None
    clock = Clock()
    w = worker(
        session_factory,
        receiver.base_url,
        clock=clock,
        retry={"initial_backoff_seconds": 10, "max_backoff_seconds": 100},
    )
    w.drain()
    first_retry = rows(session_factory)[oid].next_attempt_at
    assert T0 + timedelta(seconds=10) <= first_retry <= T0 + timedelta(seconds=20)
    clock.now = first_retry
    w.drain()
    second_retry = rows(session_factory)[oid].next_attempt_at
    # exponential: the second wait is 20 s plus up to 10 s of jitter
    assert (
        first_retry + timedelta(seconds=20) <= second_retry <= first_retry + timedelta(seconds=30)
    )
    clock.now = second_retry
    w.drain()

    row = rows(session_factory)[oid]
    assert (row.state, row.attempts, row.last_status, row.sent_version_id) == (
        "delivered",
        3,
        "201",
        1,
    )
    assert row.first_attempt_at == T0 and row.delivered_at == second_retry
    log = attempts(session_factory, oid)
    assert [(a.outcome, a.status) for a in log] == [
        ("retry", "503"),
        ("retry", "503"),
        ("delivered", "201"),
    ]
    assert [a.attempted_at for a in log] == [T0, first_retry, second_retry]
    assert all(a.destination == DEST for a in log)


def test_retry_after_is_honoured_when_longer_than_the_backoff(
    session_factory: sessionmaker[Session], receiver: Receiver
) -> None:
    [oid] = queue(session_factory, [observation("o1", "p1", "v1")])
    receiver.rule = lambda t, i, body, n: (429, {"Retry-After": "120"}, None) if n == 1 else None
    clock = Clock()
    w = worker(session_factory, receiver.base_url, clock=clock)
    w.drain()
    row = rows(session_factory)[oid]
    assert (row.state, row.last_status) == ("pending", "429")
    assert row.next_attempt_at == T0 + timedelta(seconds=120)
    clock.advance(119)
    assert w.drain() == []  # not due yet
    clock.advance(1)
    w.drain()
    assert rows(session_factory)[oid].state == "delivered"


def test_max_attempts_makes_a_dead_letter_with_the_reason(
    session_factory: sessionmaker[Session], receiver: Receiver
) -> None:
    [oid] = queue(session_factory, [observation("o1", "p1", "v1")])
    receiver.rule = lambda t, i, body, n: (500, {}, None)
    clock = Clock()
    w = worker(
        session_factory,
        receiver.base_url,
        clock=clock,
        retry={"max_attempts": 3, "initial_backoff_seconds": 1},
    )
    for _ in range(3):
        w.drain()
        clock.advance(60)
    row = rows(session_factory)[oid]
    assert (row.state, row.attempts) == ("dead", 3)
    assert "HTTP 500" in row.last_error and "gave up after 3 attempts" in row.last_error
    assert [a.outcome for a in attempts(session_factory, oid)] == ["retry", "retry", "dead"]
    assert len(receiver.requests) == 3
    clock.advance(3600)
    assert w.drain() == []  # a dead letter is never picked up again on its own


def test_max_age_makes_a_dead_letter(
    session_factory: sessionmaker[Session], receiver: Receiver
) -> None:
    [oid] = queue(session_factory, [observation("o1", "p1", "v1")])
    receiver.rule = lambda t, i, body, n: (503, {"Retry-After": "40"}, None)
    clock = Clock()
    w = worker(
        session_factory,
        receiver.base_url,
        clock=clock,
        retry={"max_age_seconds": 100, "initial_backoff_seconds": 1},
    )
    for _ in range(5):
        w.drain()
        clock.advance(40)
    row = rows(session_factory)[oid]
    # tries at 0, 40, 80 s; the next would come 120 s after the first
    assert (row.state, row.attempts) == ("dead", 3)
    assert "max_age_seconds 100" in row.last_error


def test_pending_versions_of_one_resource_go_once_as_the_current_version(
    session_factory: sessionmaker[Session], receiver: Receiver
) -> None:
    ids = [
        *queue(session_factory, [observation("o1", "p1", "v1")]),
        *queue(session_factory, [observation("o1", "p1", "v2")]),
        *queue(session_factory, [observation("o1", "p1", "v3")]),
    ]
    w = worker(session_factory, receiver.base_url, clock=Clock())
    w.drain()
    assert [(r.ref, r.mark) for r in receiver.requests] == [("Observation/o1", "v3")]
    state = rows(session_factory)
    assert [(state[i].state, state[i].version_id, state[i].sent_version_id) for i in ids] == [
        ("delivered", 1, 3),
        ("delivered", 2, 3),
        ("delivered", 3, 3),
    ]
    assert [a.outcome for a in attempts(session_factory, ids[2])] == ["delivered"]


def test_a_row_whose_worker_died_is_sent_again_when_its_lease_runs_out(
    session_factory: sessionmaker[Session], receiver: Receiver
) -> None:
    [oid] = queue(session_factory, [observation("o1", "p1", "v1")])
    with session_factory.begin() as session:  # a worker claims it, then dies
        [taken] = claim(
            session, destination=DEST, worker="dead-worker", now=T0, lease_seconds=60, limit=10
        )
    assert taken.id == oid
    clock = Clock()
    w = worker(session_factory, receiver.base_url, clock=clock)
    clock.advance(59)
    assert w.drain() == []
    clock.advance(2)
    w.drain()
    row = rows(session_factory)[oid]
    assert (row.state, row.claimed_by) == ("delivered", None)
    assert receiver.refs() == ["Observation/o1"]


def test_a_resource_no_longer_stored_is_a_dead_letter_without_a_send(
    session_factory: sessionmaker[Session], receiver: Receiver
) -> None:
    ids = queue(session_factory, [observation("o1", "p1", "v1"), observation("o2", "p2", "v1")])
    with session_factory.begin() as session:
        session.execute(update(Resource).where(Resource.id == "o1").values(deleted=True))
    w = worker(session_factory, receiver.base_url, clock=Clock())
    w.drain()
    state = rows(session_factory)
    assert state[ids[0]].state == "dead" and "deleted" in state[ids[0]].last_error
    assert state[ids[1]].state == "delivered"
    assert receiver.refs() == ["Observation/o2"]


def test_transaction_bundles_deliver_a_batch_in_one_request(
    session_factory: sessionmaker[Session], receiver: Receiver
) -> None:
    ids = queue(session_factory, [observation(f"o{n}", f"p{n}", "v1") for n in range(6)])
    w = worker(session_factory, receiver.base_url, clock=Clock(), bundle="transaction")
    reports = w.drain()
    assert [r.claimed for r in reports] == [6]
    assert sorted(receiver.refs()) == sorted(f"Observation/o{n}" for n in range(6))
    assert {rows(session_factory)[i].state for i in ids} == {"delivered"}


def test_outbox_rows_are_untouched_by_other_destinations(
    session_factory: sessionmaker[Session], receiver: Receiver
) -> None:
    [other] = queue(session_factory, [observation("o1", "p1", "v1")], destination="elsewhere")
    w = worker(session_factory, receiver.base_url, clock=Clock())
    assert w.drain() == []
    with session_factory() as session:
        assert session.get(Outbox, other).state == "pending"


class _Misbehaving:
    """A destination that breaks its contract: it answers some items twice, skips others,
    or raises for the whole batch."""

    id, kind = DEST, "test"

    def __init__(self) -> None:
        self.calls = 0

    def check(self) -> CheckResult:
        return CheckResult(self.id, self.kind, True, 0.0)

    def send(self, batch: list[DeliveryItem]) -> list[ItemResult]:
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("connector bug")
        first = batch[0].outbox_id
        return [ItemResult(first, True, status=200), ItemResult(first, False, status=500)]

    def close(self) -> None:
        pass


def test_a_destination_that_breaks_its_contract_loses_nothing(
    session_factory: sessionmaker[Session],
) -> None:
    ids = queue(session_factory, [observation("o1", "p1", "v1"), observation("o2", "p2", "v1")])
    clock = Clock()
    w = DeliveryWorker(session_factory, {DEST: _Misbehaving()}, {}, worker_id="w1", clock=clock)
    w.drain()  # send raised: both rows wait for a retry
    state = rows(session_factory)
    assert [(state[i].state, state[i].last_error) for i in ids] == [
        ("pending", "send raised RuntimeError")
    ] * 2
    clock.advance(10)
    w.drain()  # o1 answered (twice: the first answer counts), o2 skipped: retried
    state = rows(session_factory)
    assert (state[ids[0]].state, state[ids[0]].attempts) == ("delivered", 2)
    assert (state[ids[1]].state, state[ids[1]].last_error) == (
        "pending",
        "the destination returned no result",
    )
    assert len(attempts(session_factory, ids[0])) == 2

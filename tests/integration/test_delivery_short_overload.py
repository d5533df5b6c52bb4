"""A short overload: the destination answers a few transaction Bundles with 503 and
``Retry-After: 1``, then takes them. Delivery must go on within seconds: one failed Bundle
of 5 rows is one failed request for the circuit breaker (it used to count 5 and open the
breaker at once, which then doubled its pause on every failed probe: minutes of stall),
and a short ``Retry-After`` shortens the breaker's cool-down.

A real loopback FHIR receiver answers; the worker's clock is the test's, so "seconds" is
the worker's own time between the first try and the last delivery, not the wall clock."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker

from adapter.delivery.breaker import BreakerConfig
from adapter.delivery.worker import DeliveryWorker
from tests.integration.delivery_receiver import Receiver
from tests.integration.delivery_support import (
    DEST,
    Clock,
    breaker_state,
    observation,
    queue,
    rows,
    worker,
)

RETRY_AFTER_1 = (503, {"Retry-After": "1"}, None)


def _run(w: DeliveryWorker, clock: Clock, factory: sessionmaker[Session], ids: list[int]):
    """Worker passes, the clock moving half a second when nothing was due, until every row
    is delivered; the breaker states seen and the worker time it took."""
    start, states = clock.now, []
    for _ in range(400):
        report = w.process(DEST)
        states.append(report.breaker)
        if {rows(factory)[i].state for i in ids} == {"delivered"}:
            return states, (clock.now - start).total_seconds()
        if not report.claimed:
            clock.advance(0.5)
    raise AssertionError(f"not delivered: {[rows(factory)[i].state for i in ids]}")


def test_four_503_answers_to_a_bundle_of_five_do_not_open_thebreaker_state(
    session_factory: sessionmaker[Session], receiver: Receiver
) -> None:
    ids = queue(session_factory, [observation(f"o{n}", f"p{n}", "v1") for n in range(5)])
    receiver.bundle_rule = lambda n: RETRY_AFTER_1 if n <= 4 else None
    clock = Clock()
    w = worker(session_factory, receiver.base_url, clock=clock, bundle="transaction")

    states, took = _run(w, clock, session_factory, ids)

    # the first Bundle carried all 5 rows; the rows' jitter may split the later tries
    assert receiver.bundles[:4] == [503] * 4 and set(receiver.bundles[4:]) == {200}
    assert "open" not in states  # 4 failed requests < failure_threshold 5
    assert sorted(receiver.refs()) == [f"Observation/o{n}" for n in range(5)]
    assert max(rows(session_factory)[i].attempts for i in ids) <= 5
    state = breaker_state(session_factory)
    assert (state.breaker_state, state.consecutive_failures) == ("closed", 0)
    # the rows' own backoff only (1 s doubled, up to 1 s jitter: at most 2+3+5+9 s, and the
    # test's half-second steps); before, the breaker paused 30 + 60 + 120 + 240 s
    assert took <= 25


def test_a_short_retry_after_shortens_the_breakers_cool_down(
    session_factory: sessionmaker[Session], receiver: Receiver
) -> None:
    ids = queue(session_factory, [observation(f"o{n}", f"p{n}", "v1") for n in range(5)])
    receiver.bundle_rule = lambda n: RETRY_AFTER_1 if n <= 3 else None
    clock = Clock()
    w = worker(
        session_factory,
        receiver.base_url,
        clock=clock,
        bundle="transaction",
        breaker=BreakerConfig(failure_threshold=2, cool_down_seconds=30),
        retry={"initial_backoff_seconds": 0.5, "max_backoff_seconds": 1},
    )

    assert w.process(DEST).breaker == "closed"  # one failed request (5 rows)
    clock.advance(1.5)
    assert w.process(DEST).breaker == "open"  # the second
    state = breaker_state(session_factory)
    # the destination asked for 1 s: the cool-down is 1 s, not 30
    assert state.open_until == clock.now + timedelta(seconds=1)
    clock.advance(1)
    probe = w.process(DEST)  # the probe (one row) meets the third 503 ...
    assert (probe.admission, probe.claimed, probe.breaker) == ("probe", 1, "open")
    assert breaker_state(session_factory).open_until == clock.now + timedelta(seconds=1)

    states, took = _run(w, clock, session_factory, ids)  # ... and the next one gets through

    assert receiver.bundles[:3] == [503, 503, 503] and set(receiver.bundles[3:]) == {200}
    assert states[-1] == "closed" and took <= 5
    assert len(receiver.refs()) == 5

"""A circuit breaker per destination, kept in ``delivery_destination`` so that every worker
(on every host) pauses a failing destination together.

closed     deliveries go out; ``failure_threshold`` failed requests in a row open it
open       nothing is sent until ``open_until``; the outbox rows wait without using tries
half-open  one worker (the first to switch the row) sends one item as a probe: success
           closes the breaker, failure opens it again for twice the previous cool-down

Failures are counted per request, not per row: a transaction Bundle of 5 rows answered 503
is one failure (before, it was 5 and one bad answer opened the breaker). A destination that
says how long to wait (``Retry-After`` on every failed request of the batch) is believed
when that is shorter than the cool-down: a short overload is not paused for minutes.

An operator's pause (``delivery_destination.paused_at``, the console) is a ``wait`` too,
until resumed.

A refusal (fatal 4xx) is an answer, so it counts as the destination being up.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy.orm import Session

from adapter.store import outbox

Admission = Literal["send", "probe", "wait"]


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    failure_threshold: int = 5  # failed requests in a row that open the breaker
    cool_down_seconds: float = 30.0  # first pause; doubled after each failed probe ...
    max_cool_down_seconds: float = 600.0  # ... up to this
    probe_timeout_seconds: float = 300.0  # a probe not answered by then may be taken over


def admit(
    session: Session, destination: str, *, worker: str, now: datetime, config: BreakerConfig
) -> Admission:
    """``send`` a normal batch, send one item as a ``probe``, or ``wait``."""
    found = outbox.read_admission(session, destination)
    if found is None:  # the destination's first batch ever
        outbox.ensure(session, destination, now)
        found = outbox.read_admission(session, destination)
        assert found is not None
    state, open_until, probe_by, updated_at, paused = found
    if paused:  # an operator paused it (the console)
        return "wait"
    if state == "closed":
        return "send"
    if state == "open":
        if open_until is not None and open_until > now:
            return "wait"
        # the first worker to switch the row probes; the others keep waiting
        taken = outbox.take_probe(session, destination, worker=worker, now=now)
        return "probe" if taken else "wait"
    if probe_by == worker:
        return "probe"
    if updated_at + timedelta(seconds=config.probe_timeout_seconds) <= now:
        taken = outbox.take_over_probe(
            session, destination, worker=worker, now=now, seen_updated_at=updated_at
        )
        return "probe" if taken else "wait"
    return "wait"


@dataclass(slots=True)
class Tally:
    """One batch's items: ``delivered`` (rows, coalesced ones included), ``refused`` (a
    fatal answer), ``failed`` (retriable failures), of which ``retried`` were rescheduled;
    ``dead`` letters made (refusals, exhausted policies, local errors). ``failed_requests``
    is how many requests those ``failed`` rows went out in (what the breaker counts), and
    ``retry_after`` the longest ``Retry-After`` among them when every one carried one."""

    delivered: int = 0
    coalesced: int = 0
    refused: int = 0
    failed: int = 0
    retried: int = 0
    dead: int = 0
    local: int = 0  # rows settled without sending (resource gone)
    failed_requests: int = 0
    retry_after: float | None = None

    @property
    def sent(self) -> int:
        return self.delivered - self.coalesced + self.refused + self.failed


def record(
    session: Session,
    destination: str,
    *,
    now: datetime,
    config: BreakerConfig,
    tally: Tally,
    error: str | None = None,
) -> str:
    """Count one batch into the totals and the breaker. Returns the breaker state after.

    A batch that got an answer updates the shared row once (totals and closed breaker in
    one statement); the worker runs this in a short transaction of its own after the
    settlements are committed, so the row is locked for one statement, not for the
    settlements and the audit chain's write."""
    closes = bool(tally.delivered > tally.coalesced or tally.refused)

    def add() -> bool:
        return outbox.add_totals(
            session,
            destination,
            attempts=tally.sent,
            delivered=tally.delivered,
            retried=tally.retried,
            dead=tally.dead,
            close_at=now if closes else None,
            success=bool(tally.delivered),
        )

    if not add():  # the row is made by admit(); a caller may record without it
        outbox.ensure(session, destination, now)
        add()
    if closes:
        return "closed"
    if not tally.failed:
        return outbox.breaker_state(session, destination) or "closed"
    state, failures, opened = outbox.count_failures(
        session, destination, failed=max(1, tally.failed_requests), now=now, error=error
    )
    if state == "half-open" or (state == "closed" and failures >= config.failure_threshold):
        return _open(
            session,
            destination,
            now=now,
            config=config,
            opened=opened,
            retry_after=tally.retry_after,
        )
    return state


def record_probe_check(
    session: Session,
    destination: str,
    *,
    now: datetime,
    config: BreakerConfig,
    reachable: bool,
    error: str | None,
) -> str:
    """A probe without an item to send (the queue is empty): the destination's check."""
    if reachable:
        outbox.close_breaker(session, destination, now=now, success=False)
        return "closed"
    opened = outbox.note_failure(session, destination, now=now, error=error)
    return _open(session, destination, now=now, config=config, opened=opened)


def _open(
    session: Session,
    destination: str,
    *,
    now: datetime,
    config: BreakerConfig,
    opened: int,
    retry_after: float | None = None,
) -> str:
    pause = min(config.cool_down_seconds * 2**opened, config.max_cool_down_seconds)
    if retry_after is not None:
        pause = min(pause, max(retry_after, 0.0))
    outbox.open_breaker(session, destination, now=now, pause_seconds=pause, opened=opened)
    return "open"


def current_state(session: Session, destination: str) -> str | None:
    return outbox.breaker_state(session, destination)

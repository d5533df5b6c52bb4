"""A circuit breaker per destination, kept in ``delivery_destination`` so that every worker
(on every host) pauses a failing destination together.

closed     deliveries go out; ``failure_threshold`` retriable failures in a row open it
open       nothing is sent until ``open_until``; the outbox rows wait without using tries
half-open  one worker (the first to switch the row) sends one item as a probe: success
           closes the breaker, failure opens it again for twice the previous cool-down

A refusal (fatal 4xx) is an answer, so it counts as the destination being up.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from adapter.store.models import DeliveryDestination

_d = DeliveryDestination.__table__

Admission = Literal["send", "probe", "wait"]


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    failure_threshold: int = 5  # retriable failures in a row that open the breaker
    cool_down_seconds: float = 30.0  # first pause; doubled after each failed probe ...
    max_cool_down_seconds: float = 600.0  # ... up to this
    probe_timeout_seconds: float = 300.0  # a probe not answered by then may be taken over


def ensure(session: Session, destination: str, now: datetime) -> None:
    """The destination's row exists (closed) after this."""
    dialect = session.get_bind().dialect.name
    values = {
        "destination": destination,
        "breaker_state": "closed",
        "consecutive_failures": 0,
        "opened_count": 0,
        "updated_at": now,
        "attempts_total": 0,
        "delivered_total": 0,
        "retried_total": 0,
        "dead_total": 0,
    }
    if dialect == "postgresql":
        session.execute(postgresql.insert(_d).values(**values).on_conflict_do_nothing())
    elif dialect == "sqlite":
        session.execute(sqlite.insert(_d).values(**values).on_conflict_do_nothing())
    elif session.get(DeliveryDestination, destination) is None:  # pragma: no cover
        session.execute(_d.insert().values(**values))


def admit(
    session: Session, destination: str, *, worker: str, now: datetime, config: BreakerConfig
) -> Admission:
    """``send`` a normal batch, send one item as a ``probe``, or ``wait``."""
    ensure(session, destination, now)
    row = session.execute(
        select(_d.c.breaker_state, _d.c.open_until, _d.c.probe_by, _d.c.updated_at).where(
            _d.c.destination == destination
        )
    ).one()
    state, open_until, probe_by, updated_at = row
    if state == "closed":
        return "send"
    if state == "open":
        if open_until is not None and open_until > now:
            return "wait"
        # the first worker to switch the row probes; the others keep waiting
        taken = session.execute(
            update(_d)
            .where(
                _d.c.destination == destination,
                _d.c.breaker_state == "open",
            )
            .values(breaker_state="half-open", probe_by=worker, updated_at=now)
        )
        return "probe" if taken.rowcount else "wait"  # type: ignore[attr-defined]
    if probe_by == worker:
        return "probe"
    if updated_at + timedelta(seconds=config.probe_timeout_seconds) <= now:
        taken = session.execute(
            update(_d)
            .where(
                _d.c.destination == destination,
                _d.c.breaker_state == "half-open",
                _d.c.updated_at == updated_at,
            )
            .values(probe_by=worker, updated_at=now)
        )
        return "probe" if taken.rowcount else "wait"  # type: ignore[attr-defined]
    return "wait"


@dataclass(slots=True)
class Tally:
    """One batch's items: ``delivered`` (rows, coalesced ones included), ``refused`` (a
    fatal answer), ``failed`` (retriable failures), of which ``retried`` were rescheduled;
    ``dead`` letters made (refusals, exhausted policies, local errors)."""

    delivered: int = 0
    coalesced: int = 0
    refused: int = 0
    failed: int = 0
    retried: int = 0
    dead: int = 0
    local: int = 0  # rows settled without sending (resource gone)

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
    """Count one batch into the totals and the breaker. Returns the breaker state after."""
    ensure(session, destination, now)
    where = _d.c.destination == destination
    session.execute(
        update(_d)
        .where(where)
        .values(
            attempts_total=_d.c.attempts_total + tally.sent,
            delivered_total=_d.c.delivered_total + tally.delivered,
            retried_total=_d.c.retried_total + tally.retried,
            dead_total=_d.c.dead_total + tally.dead,
        )
    )
    if tally.delivered > tally.coalesced or tally.refused:
        values: dict[str, object] = {
            "breaker_state": "closed",
            "consecutive_failures": 0,
            "opened_count": 0,
            "open_until": None,
            "probe_by": None,
            "updated_at": now,
        }
        if tally.delivered:
            values["last_success_at"] = now
        session.execute(update(_d).where(where).values(**values))
        return "closed"
    if not tally.failed:
        return current_state(session, destination) or "closed"
    # the UPDATE locks the row (PostgreSQL) so the read below sees every worker's count
    session.execute(
        update(_d)
        .where(where)
        .values(
            consecutive_failures=_d.c.consecutive_failures + tally.failed,
            last_failure_at=now,
            last_error=error,
            updated_at=now,
        )
    )
    state, failures, opened = session.execute(
        select(_d.c.breaker_state, _d.c.consecutive_failures, _d.c.opened_count).where(where)
    ).one()
    if state == "half-open" or (state == "closed" and failures >= config.failure_threshold):
        return _open(session, destination, now=now, config=config, opened=opened)
    return str(state)


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
    where = _d.c.destination == destination
    if reachable:
        session.execute(
            update(_d)
            .where(where)
            .values(
                breaker_state="closed",
                consecutive_failures=0,
                opened_count=0,
                open_until=None,
                probe_by=None,
                updated_at=now,
            )
        )
        return "closed"
    opened = session.execute(select(_d.c.opened_count).where(where)).scalar_one()
    session.execute(update(_d).where(where).values(last_failure_at=now, last_error=error))
    return _open(session, destination, now=now, config=config, opened=opened)


def _open(
    session: Session, destination: str, *, now: datetime, config: BreakerConfig, opened: int
) -> str:
    pause = min(config.cool_down_seconds * 2**opened, config.max_cool_down_seconds)
    session.execute(
        update(_d)
        .where(_d.c.destination == destination)
        .values(
            breaker_state="open",
            opened_count=opened + 1,
            probe_by=None,
            updated_at=now,
            open_until=now + timedelta(seconds=pause),
        )
    )
    return "open"


def current_state(session: Session, destination: str) -> str | None:
    return session.execute(
        select(_d.c.breaker_state).where(_d.c.destination == destination)
    ).scalar_one_or_none()

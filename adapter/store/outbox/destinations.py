"""The ``delivery_destination`` table (per destination, shared by every worker: circuit
breaker state and running totals) and the queue figures read for /health and /metrics.

The breaker's decisions live in :mod:`adapter.delivery.breaker`; this module only reads
and writes its row. The conditional updates (``take_probe``, ``take_over_probe``) are how
workers on several hosts agree on who probes: the first to switch the row wins.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import RowMapping, case, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from adapter.store.models import DeliveryDestination, Outbox, OutboxState
from adapter.store.outbox.names import destination_names, known_destination_ids
from adapter.store.outbox.wake import notify

_o = Outbox.__table__
_d = DeliveryDestination.__table__


@dataclass(frozen=True, slots=True)
class DestinationRecord:
    """One ``delivery_destination`` row."""

    destination: str
    breaker_state: str  # closed | open | half-open
    consecutive_failures: int
    opened_count: int  # opens since the last close
    open_until: datetime | None
    probe_by: str | None
    last_success_at: datetime | None
    last_failure_at: datetime | None
    last_error: str | None
    updated_at: datetime
    attempts_total: int
    delivered_total: int
    retried_total: int
    dead_total: int
    last_sequence: int = 0  # the last sequence number given to a row of this destination
    paused_at: datetime | None = None  # paused by an operator (nothing is sent) ...
    paused_by: str | None = None  # ... and by whom
    pruned_total: int = 0  # delivered rows deleted by the retention (decision 0064)

    @classmethod
    def of(cls, row: RowMapping) -> DestinationRecord:
        return cls(**{f.name: row[f.name] for f in fields(cls)})


@dataclass(frozen=True, slots=True)
class QueueFigure:
    """How many rows of one destination are in one state, and the oldest one's age."""

    destination: str
    state: OutboxState
    count: int
    oldest_created_at: datetime | None


def queue_figures(session: Session) -> list[QueueFigure]:
    """Pending, in-flight and dead rows per destination (delivered ones are history)."""
    counted = (OutboxState.PENDING, OutboxState.IN_FLIGHT, OutboxState.DEAD)
    found = session.execute(
        select(_o.c.destination_id, _o.c.state, func.count(), func.min(_o.c.created_at))
        .where(_o.c.state.in_([s.value for s in counted]))
        .group_by(_o.c.destination_id, _o.c.state)
    ).all()
    names = destination_names(session, {row[0] for row in found})
    return [
        QueueFigure(names[key], OutboxState(state), int(count), oldest)
        for key, state, count, oldest in found
    ]


def state_counts(session: Session, destinations: list[str]) -> dict[str, dict[str, int]]:
    """destination -> state -> rows, every state (delivered included: the console's table)."""
    counts: dict[str, dict[str, int]] = {name: {} for name in destinations}
    keys = known_destination_ids(session, destinations)
    names = {key: name for name, key in keys.items()}
    found = session.execute(
        select(_o.c.destination_id, _o.c.state, func.count())
        .where(_o.c.destination_id.in_(sorted(names)))
        .group_by(_o.c.destination_id, _o.c.state)
    )
    for key, state, count in found:
        counts[names[key]][str(state)] = int(count)
    return counts


def destination_records(session: Session) -> list[DestinationRecord]:
    return [DestinationRecord.of(row) for row in session.execute(select(_d)).mappings()]


# -- the breaker's row ------------------------------------------------------------------------
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
        "last_sequence": 0,
    }
    if dialect == "postgresql":
        session.execute(postgresql.insert(_d).values(**values).on_conflict_do_nothing())
    elif dialect == "sqlite":
        session.execute(sqlite.insert(_d).values(**values).on_conflict_do_nothing())
    elif session.get(DeliveryDestination, destination) is None:  # pragma: no cover
        session.execute(_d.insert().values(**values))


def read_admission(
    session: Session, destination: str
) -> tuple[str, datetime | None, str | None, datetime, bool] | None:
    """(state, open_until, probe_by, updated_at, paused) in one read; None when the row does
    not exist yet. A plain SELECT: it never waits for another worker's update of the row
    (``ensure``'s INSERT ... ON CONFLICT does, on PostgreSQL, while that update is
    uncommitted), so every claim is not serialised behind every settlement."""
    found = session.execute(
        select(
            _d.c.breaker_state, _d.c.open_until, _d.c.probe_by, _d.c.updated_at, _d.c.paused_at
        ).where(_d.c.destination == destination)
    ).first()
    if found is None:
        return None
    state, open_until, probe_by, updated_at, paused_at = found
    return state, open_until, probe_by, updated_at, paused_at is not None


def read_breaker(
    session: Session, destination: str
) -> tuple[str, datetime | None, str | None, datetime]:
    """(state, open_until, probe_by, updated_at) of an existing row."""
    state, open_until, probe_by, updated_at = session.execute(
        select(_d.c.breaker_state, _d.c.open_until, _d.c.probe_by, _d.c.updated_at).where(
            _d.c.destination == destination
        )
    ).one()
    return state, open_until, probe_by, updated_at


def take_probe(session: Session, destination: str, *, worker: str, now: datetime) -> bool:
    """open -> half-open with ``worker`` as the prober; False when another worker was first."""
    taken = session.execute(
        update(_d)
        .where(_d.c.destination == destination, _d.c.breaker_state == "open")
        .values(breaker_state="half-open", probe_by=worker, updated_at=now)
    )
    return bool(taken.rowcount)  # type: ignore[attr-defined]


def take_over_probe(
    session: Session, destination: str, *, worker: str, now: datetime, seen_updated_at: datetime
) -> bool:
    """A half-open probe nobody answered: ``worker`` takes it over, unless another worker
    changed the row since it was read (``seen_updated_at``)."""
    taken = session.execute(
        update(_d)
        .where(
            _d.c.destination == destination,
            _d.c.breaker_state == "half-open",
            _d.c.updated_at == seen_updated_at,
        )
        .values(probe_by=worker, updated_at=now)
    )
    return bool(taken.rowcount)  # type: ignore[attr-defined]


def add_totals(
    session: Session,
    destination: str,
    *,
    attempts: int,
    delivered: int,
    retried: int,
    dead: int,
    close_at: datetime | None = None,
    success: bool = False,
) -> bool:
    """Add a batch to the running totals; with ``close_at`` also close the breaker (as
    ``close_breaker``) in the same statement: one update of the shared row per batch.
    False when the row does not exist."""
    values: dict[str, Any] = {
        "attempts_total": _d.c.attempts_total + attempts,
        "delivered_total": _d.c.delivered_total + delivered,
        "retried_total": _d.c.retried_total + retried,
        "dead_total": _d.c.dead_total + dead,
    }
    if close_at is not None:
        values.update(_closed(close_at, success))
    done = session.execute(update(_d).where(_d.c.destination == destination).values(**values))
    return bool(done.rowcount)  # type: ignore[attr-defined]


def _closed(now: datetime, success: bool) -> dict[str, Any]:
    values: dict[str, Any] = {
        "breaker_state": "closed",
        "consecutive_failures": 0,
        "opened_count": 0,
        "open_until": None,
        "probe_by": None,
        "updated_at": now,
    }
    if success:
        values["last_success_at"] = now
    return values


def close_breaker(session: Session, destination: str, *, now: datetime, success: bool) -> None:
    """Closed, failures forgotten; ``success`` also stamps ``last_success_at``."""
    session.execute(
        update(_d).where(_d.c.destination == destination).values(**_closed(now, success))
    )


def count_failures(
    session: Session, destination: str, *, failed: int, now: datetime, error: str | None
) -> tuple[str, int, int]:
    """Add ``failed`` to the failures in a row; (state, failures in a row, opened_count)
    after it. The UPDATE locks the row (PostgreSQL) so the read sees every worker's count."""
    where = _d.c.destination == destination
    session.execute(
        update(_d)
        .where(where)
        .values(
            consecutive_failures=_d.c.consecutive_failures + failed,
            last_failure_at=now,
            last_error=error,
            updated_at=now,
        )
    )
    state, failures, opened = session.execute(
        select(_d.c.breaker_state, _d.c.consecutive_failures, _d.c.opened_count).where(where)
    ).one()
    return str(state), int(failures), int(opened)


def note_failure(session: Session, destination: str, *, now: datetime, error: str | None) -> int:
    """A failed check (not an attempt): stamped, and the row's ``opened_count`` returned."""
    where = _d.c.destination == destination
    opened = session.execute(select(_d.c.opened_count).where(where)).scalar_one()
    session.execute(update(_d).where(where).values(last_failure_at=now, last_error=error))
    return int(opened)


def open_breaker(
    session: Session, destination: str, *, now: datetime, pause_seconds: float, opened: int
) -> None:
    session.execute(
        update(_d)
        .where(_d.c.destination == destination)
        .values(
            breaker_state="open",
            opened_count=opened + 1,
            probe_by=None,
            updated_at=now,
            open_until=now + timedelta(seconds=pause_seconds),
        )
    )


def set_paused(session: Session, destination: str, *, paused: bool, by: str, now: datetime) -> None:
    """Pause (nothing is sent, rows wait without using tries) or resume a destination."""
    ensure(session, destination, now)
    session.execute(
        update(_d)
        .where(_d.c.destination == destination)
        .values(paused_at=now if paused else None, paused_by=by if paused else None)
    )
    if not paused:
        notify(session, [destination])  # PostgreSQL: idle workers resume at once


def is_paused(session: Session, destination: str) -> bool:
    return (
        session.execute(
            select(_d.c.paused_at).where(_d.c.destination == destination)
        ).scalar_one_or_none()
        is not None
    )


def breaker_state(session: Session, destination: str) -> str | None:
    return session.execute(
        select(_d.c.breaker_state).where(_d.c.destination == destination)
    ).scalar_one_or_none()


def number(
    session: Session,
    destination: str,
    ids: list[int],
    known: Mapping[int, int | None] | None = None,
) -> dict[int, int]:
    """Give the rows ``ids`` (claimed, about to be sent; in id order) the destination's next
    sequence numbers, unless they have one already (a resend keeps its number). ``known``:
    the rows' ``sequence`` as the claim returned it (spares a read). The UPDATE of the
    destination's row serialises the workers of one destination (PostgreSQL) until the
    caller commits: call this last in the claim's transaction; the rows get their numbers
    in one statement."""
    if not ids:
        return {}
    if known is None:
        have = dict(
            session.execute(
                select(_o.c.id, _o.c.sequence).where(_o.c.id.in_(ids), _o.c.sequence.is_not(None))
            ).all()
        )
    else:
        have = {i: known[i] for i in ids if known.get(i) is not None}
    fresh = sorted(i for i in ids if i not in have)
    if fresh:
        last = session.execute(
            update(_d)
            .where(_d.c.destination == destination)
            .values(last_sequence=_d.c.last_sequence + len(fresh))
            .returning(_d.c.last_sequence)
        ).scalar_one()
        first = int(last) - len(fresh) + 1
        given = {row_id: first + offset for offset, row_id in enumerate(fresh)}
        session.execute(
            update(_o)
            .where(_o.c.id.in_(fresh))
            .values(sequence=case(given, value=_o.c.id, else_=_o.c.sequence))
        )
        have.update(given)
    return {int(k): int(v) for k, v in have.items() if v is not None}

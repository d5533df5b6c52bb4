"""Delivery figures per destination, for ``GET /health`` and ``GET /metrics``.

Read from the database, so they are the same whichever process (or host) delivers:
the queue (``pending`` + ``in-flight`` rows), its oldest row, dead letters, the running
totals and the circuit breaker kept in ``delivery_destination``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from adapter.consortium import Consortium
from adapter.store import outbox
from adapter.store.outbox import OutboxState

# a destination whose oldest undelivered row is older than this is "behind"
BEHIND_SECONDS = 900.0


@dataclass(slots=True)
class DestinationStatus:
    id: str
    kind: str | None
    enabled: bool
    configured: bool = True
    pending: int = 0
    in_flight: int = 0
    dead_letters: int = 0
    oldest_pending_at: datetime | None = None
    oldest_pending_age_seconds: float | None = None
    attempts_total: int = 0
    delivered_total: int = 0
    retried_total: int = 0
    dead_total: int = 0
    pruned_total: int = 0  # delivered rows deleted by the outbox retention (decision 0064)
    last_success_at: datetime | None = None
    last_failure_at: datetime | None = None
    breaker_state: str = "closed"
    open_until: datetime | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def queue_depth(self) -> int:
        return self.pending + self.in_flight

    @property
    def status(self) -> str:
        if not self.enabled:
            return "disabled"
        return "degraded" if self.problems else "ok"

    def as_dict(self) -> dict[str, Any]:
        def instant(value: datetime | None) -> str | None:
            return value.isoformat() if value else None

        out: dict[str, Any] = {
            "status": self.status,
            "kind": self.kind,
            "queue_depth": self.queue_depth,
            "in_flight": self.in_flight,
            "oldest_pending_age_seconds": None
            if self.oldest_pending_age_seconds is None
            else round(self.oldest_pending_age_seconds, 1),
            "dead_letters": self.dead_letters,
            "attempts": self.attempts_total,
            "delivered": self.delivered_total,
            "last_success": instant(self.last_success_at),
            "last_failure": instant(self.last_failure_at),
            "breaker": self.breaker_state,
        }
        if self.open_until is not None and self.breaker_state == "open":
            out["breaker_open_until"] = instant(self.open_until)
        if not self.configured:
            out["configured"] = False
        if self.problems:
            out["problems"] = self.problems
        return out


def destination_statuses(
    session: Session,
    consortium: Consortium,
    *,
    now: datetime,
    behind_seconds: float = BEHIND_SECONDS,
) -> list[DestinationStatus]:
    """Every configured destination, and any other one the outbox still holds rows for."""
    statuses = {
        d.id: DestinationStatus(d.id, d.kind, d.enabled) for _, d in consortium.destinations()
    }

    def status_of(name: str) -> DestinationStatus:
        if name not in statuses:  # removed from the consortium file, rows left behind
            statuses[name] = DestinationStatus(name, None, True, configured=False)
        return statuses[name]

    for figure in outbox.queue_figures(session):
        status = status_of(figure.destination)
        oldest = figure.oldest_created_at
        if figure.state == OutboxState.DEAD:
            status.dead_letters = figure.count
            continue
        if figure.state == OutboxState.PENDING:
            status.pending = figure.count
        else:
            status.in_flight = figure.count
        if oldest is not None and (
            status.oldest_pending_at is None or oldest < status.oldest_pending_at
        ):
            status.oldest_pending_at = oldest
    for record in outbox.destination_records(session):
        if record.destination not in statuses and not record.attempts_total:
            continue
        status = status_of(record.destination)
        status.attempts_total = int(record.attempts_total)
        status.delivered_total = int(record.delivered_total)
        status.retried_total = int(record.retried_total)
        status.dead_total = int(record.dead_total)
        status.pruned_total = int(record.pruned_total)
        status.last_success_at = record.last_success_at
        status.last_failure_at = record.last_failure_at
        status.breaker_state = record.breaker_state
        status.open_until = record.open_until
    for status in statuses.values():
        if status.oldest_pending_at is not None:
            status.oldest_pending_age_seconds = max(
                0.0, (now - status.oldest_pending_at).total_seconds()
            )
        if not status.enabled:
            continue
        if status.breaker_state != "closed":
            status.problems.append(
                f"circuit breaker {status.breaker_state}: the destination keeps failing"
            )
        if (status.oldest_pending_age_seconds or 0.0) > behind_seconds:
            status.problems.append(
                f"behind: oldest undelivered item is {status.oldest_pending_age_seconds:.0f} s old"
            )
        if not status.configured and status.queue_depth:
            status.problems.append("not in the consortium file: its queue is not delivered")
    return sorted(statuses.values(), key=lambda s: s.id)

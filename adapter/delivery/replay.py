"""Reading the outbox (deliveries and their attempts) and sending deliveries again.

A replay puts a row back to ``pending``, due now, with a fresh retry budget; the worker then
sends the resource's *current* version (as for every delivery). Its earlier attempts stay in
``delivery_attempt``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from adapter.errors import ConflictError, InvalidRequestError, NotFoundError
from adapter.store.models import OUTBOX_STATES, DeliveryAttempt, Outbox

_o = Outbox.__table__

REPLAYABLE = ("dead", "delivered")


def check_state(state: str | None) -> None:
    if state is not None and state not in OUTBOX_STATES:
        raise InvalidRequestError(
            f"state must be one of {', '.join(OUTBOX_STATES)}", location="state"
        )


def list_deliveries(
    session: Session,
    *,
    state: str | None = None,
    destination: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[int, list[Outbox]]:
    """Total and one page of outbox rows, newest first."""
    check_state(state)
    where = []
    if state is not None:
        where.append(Outbox.state == state)
    if destination is not None:
        where.append(Outbox.destination == destination)
    total = session.scalar(select(func.count()).select_from(Outbox).where(*where)) or 0
    page = session.scalars(
        select(Outbox).where(*where).order_by(Outbox.id.desc()).limit(limit).offset(offset)
    ).all()
    return int(total), list(page)


def get_delivery(session: Session, outbox_id: int) -> Outbox:
    found = session.get(Outbox, outbox_id)
    if found is None:
        raise NotFoundError(f"no delivery {outbox_id}", location="id")
    return found


def attempts_of(session: Session, outbox_id: int) -> list[DeliveryAttempt]:
    return list(
        session.scalars(
            select(DeliveryAttempt)
            .where(DeliveryAttempt.outbox_id == outbox_id)
            .order_by(DeliveryAttempt.id)
        )
    )


def _reset(now: datetime) -> dict[str, Any]:
    return {
        "state": "pending",
        "next_attempt_at": now,
        "attempts": 0,
        "first_attempt_at": None,
        "last_attempt_at": None,
        "claimed_by": None,
        "claimed_until": None,
        "last_error": None,
        "last_status": None,
        "delivered_at": None,
    }


def replay_one(session: Session, outbox_id: int, *, now: datetime) -> Outbox:
    """Send one dead (or delivered) delivery again."""
    row = get_delivery(session, outbox_id)
    if row.state not in REPLAYABLE:
        raise ConflictError(
            f"delivery {outbox_id} is {row.state}: it is already queued", location="id"
        )
    session.execute(
        update(_o).where(_o.c.id == outbox_id, _o.c.state.in_(REPLAYABLE)).values(**_reset(now))
    )
    session.refresh(row)
    return row


def replay_many(
    session: Session,
    *,
    destination: str,
    now: datetime,
    since: datetime | None = None,
    state: str = "dead",
) -> int:
    """Send again every ``state`` delivery of a destination whose last attempt was at or
    after ``since``; returns how many."""
    if state not in REPLAYABLE:
        raise InvalidRequestError(
            f"only {' or '.join(REPLAYABLE)} deliveries can be replayed", location="state"
        )
    statement = update(_o).where(_o.c.destination == destination, _o.c.state == state)
    if since is not None:
        statement = statement.where(func.coalesce(_o.c.last_attempt_at, _o.c.created_at) >= since)
    result = session.execute(statement.values(**_reset(now)))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def delivery_summary(row: Outbox) -> dict[str, Any]:
    def instant(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {
        "id": row.id,
        "destination": row.destination,
        "resource": f"{row.resource_type}/{row.resource_id}",
        "version_id": row.version_id,
        "sent_version_id": row.sent_version_id,
        "patient": row.patient_key,
        "state": row.state,
        "attempts": row.attempts,
        "last_status": row.last_status,
        "last_error": row.last_error,
        "created_at": instant(row.created_at),
        "first_attempt_at": instant(row.first_attempt_at),
        "last_attempt_at": instant(row.last_attempt_at),
        "next_attempt_at": instant(row.next_attempt_at) if row.state == "pending" else None,
        "delivered_at": instant(row.delivered_at),
        "claimed_by": row.claimed_by,
        "message_id": row.message_id,
    }


def attempt_summary(attempt: DeliveryAttempt) -> dict[str, Any]:
    out: dict[str, Any] = {
        "attempted_at": attempt.attempted_at.isoformat(),
        "destination": attempt.destination,
        "outcome": attempt.outcome,
        "status": attempt.status,
        "error": attempt.error,
        "duration_ms": attempt.duration_ms,
        "version_id": attempt.version_id,
        "worker": attempt.worker,
    }
    if attempt.operation_outcome is not None:
        out["operation_outcome"] = attempt.operation_outcome
    return out

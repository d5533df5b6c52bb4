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
from adapter.store.models import OUTBOX_STATES, DeliveryAttempt, Outbox, OutboxState
from adapter.store.outbox.names import ROW, destination_filter, destinations_filter, rows_of
from adapter.store.outbox.rows import AttemptRow, OutboxRow
from adapter.store.outbox.wake import notify

_o = Outbox.__table__
_a = DeliveryAttempt.__table__

REPLAYABLE = (OutboxState.DEAD.value, OutboxState.DELIVERED.value)


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
    among: list[str] | None = None,
) -> tuple[int, list[OutboxRow]]:
    """Total and one page of outbox rows, newest first (only to the destinations ``among``
    when given: one facility's)."""
    check_state(state)
    where = []
    if among is not None:
        where.append(destinations_filter(session, among))
    if state is not None:
        where.append(_o.c.state == state)
    if destination is not None:
        where.append(destination_filter(session, destination))
    total = session.scalar(select(func.count()).select_from(_o).where(*where)) or 0
    page = session.execute(
        select(*ROW).where(*where).order_by(_o.c.id.desc()).limit(limit).offset(offset)
    ).mappings()
    return int(total), rows_of(session, page)


def find_delivery(session: Session, outbox_id: int) -> OutboxRow | None:
    found = session.execute(select(*ROW).where(_o.c.id == outbox_id)).mappings().first()
    return None if found is None else rows_of(session, [found])[0]


def get_delivery(session: Session, outbox_id: int) -> OutboxRow:
    found = find_delivery(session, outbox_id)
    if found is None:
        raise NotFoundError(
            f"no delivery {outbox_id} (delivered ones are deleted after the outbox retention, "
            "ADAPTER_OUTBOX_RETENTION_DAYS: their delivery.delivered audit records remain)",
            location="id",
        )
    return found


def attempts_of(session: Session, outbox_id: int) -> list[AttemptRow]:
    found = session.execute(select(_a).where(_a.c.outbox_id == outbox_id).order_by(_a.c.id))
    return [AttemptRow.of(row) for row in found.mappings()]


def _reset(now: datetime) -> dict[str, Any]:
    return {
        "state": OutboxState.PENDING.value,
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


def replay_one(session: Session, outbox_id: int, *, now: datetime) -> OutboxRow:
    """Send one dead (or delivered) delivery again."""
    row = get_delivery(session, outbox_id)
    if row.state not in REPLAYABLE:
        raise ConflictError(
            f"delivery {outbox_id} is {row.state}: it is already queued", location="id"
        )
    session.execute(
        update(_o).where(_o.c.id == outbox_id, _o.c.state.in_(REPLAYABLE)).values(**_reset(now))
    )
    notify(session, [row.destination])
    return get_delivery(session, outbox_id)


def replay_many(
    session: Session,
    *,
    destination: str,
    now: datetime,
    since: datetime | None = None,
    state: str = OutboxState.DEAD.value,
) -> int:
    """Send again every ``state`` delivery of a destination whose last attempt was at or
    after ``since``; returns how many."""
    if state not in REPLAYABLE:
        raise InvalidRequestError(
            f"only {' or '.join(REPLAYABLE)} deliveries can be replayed", location="state"
        )
    statement = update(_o).where(destination_filter(session, destination), _o.c.state == state)
    if since is not None:
        statement = statement.where(func.coalesce(_o.c.last_attempt_at, _o.c.created_at) >= since)
    result = session.execute(statement.values(**_reset(now)))
    count = int(result.rowcount or 0)  # type: ignore[attr-defined]
    if count:
        notify(session, [destination])
    return count

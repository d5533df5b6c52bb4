"""Claiming due outbox rows, keeping them under a lease, and writing back what became of
them (the attempt row, the outbox row moved on).

A row is *claimable* when it is due (``pending`` and ``next_attempt_at`` passed, or
``in-flight`` under an expired lease: its worker died) and no earlier row (lower id) of the
same destination and order key is still ``pending`` or ``in-flight``. So each claim takes at
most the head of each patient's queue: deliveries about one patient keep their order, and a
``dead`` row no longer holds back the rows behind it.

The claim is one ``UPDATE ... WHERE id IN (SELECT ...) RETURNING``: on PostgreSQL the
inner select locks with ``FOR UPDATE SKIP LOCKED``, so workers on several hosts share one
queue without taking the same row; on SQLite the statement runs under the database's
single write lock.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    any_,
    case,
    func,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session

from adapter.store.models import DeliveryAttempt, Outbox, OutboxState, Resource
from adapter.store.outbox.names import destination_filter, destination_key, rows_of
from adapter.store.outbox.rows import OutboxRow, Settlement

_o = Outbox.__table__
_r = Resource.__table__
_a = DeliveryAttempt.__table__

PENDING, IN_FLIGHT = OutboxState.PENDING.value, OutboxState.IN_FLIGHT.value
ACTIVE = (PENDING, IN_FLIGHT)
ERROR_MAX = 4000  # characters of an error text kept in the database


def claim(
    session: Session,
    *,
    destination: str,
    worker: str,
    now: datetime,
    lease_seconds: float,
    limit: int,
) -> list[OutboxRow]:
    """Claim up to ``limit`` due rows of one destination (heads of their order keys) for
    ``lease_seconds``; they become ``in-flight``, owned by ``worker``."""
    candidates = due_heads(session, destination=destination, now=now, limit=limit)
    statement = (
        update(_o)
        .where(_o.c.id.in_(candidates.scalar_subquery()))
        .values(
            state=IN_FLIGHT,
            claimed_by=worker,
            claimed_until=now + timedelta(seconds=lease_seconds),
        )
        .returning(*_o.c)
    )
    rows = rows_of(session, session.execute(statement).mappings(), destination)
    rows.sort(key=lambda r: r.id)
    return rows


def due_heads(
    session: Session, *, destination: str, now: datetime, limit: int, key: bool = False
) -> Select[Any]:
    """The first ``limit`` due heads of ``destination`` in id order (their ids, and their
    order keys with ``key``); on PostgreSQL locked ``FOR UPDATE SKIP LOCKED``, so a head
    another worker is claiming is passed over and one found here is this transaction's."""
    postgresql = session.get_bind().dialect.name == "postgresql"
    head = _o.alias("head")
    key_of = destination_key(session, destination)
    if postgresql:
        # the heads as one array: the primary key is then probed for them in id order and
        # the probing stops at ``limit`` claimable rows (no sort, no walk through the
        # delivered rows of the table's id order)
        chosen = head.c.id == any_(func.array(heads(key_of).scalar_subquery()))
    else:
        chosen = head.c.id.in_(heads(key_of, sqlite=True))
    candidates = (
        select(head.c.id, *([head.c.order_key] if key else []))
        # due is tested on the row itself: on PostgreSQL a row another worker changed since
        # this statement's snapshot is tested again on its newest version before it is locked
        .where(chosen, due(head, now))
        .order_by(head.c.id)
        .limit(limit)
    )
    if postgresql:
        candidates = candidates.with_for_update(skip_locked=True, of=head)
    return candidates


def heads(destination_id: int, *, sqlite: bool = False) -> Select[tuple[int]]:
    """The id of each order key's head in the destination: its lowest-id row still
    ``pending`` or ``in-flight`` (it is claimable when it is due; the rows behind it wait).
    One hashed pass over the destination's active rows, found by the ``state`` index,
    whatever the delivered history and however many rows wait behind each head. The former
    "no earlier active row" test walked the table in id order and probed, for every due row,
    every earlier row of its patient, delivered ones included (decision 0040, 2026-12-04)."""
    active = _o.alias("active")
    # SQLite read the rows in order_key order through the (destination, order_key, id)
    # index (before 0070), i.e. every row of the destination, delivered ones included;
    # grouping by an expression of the key keeps it on a (destination, state, ...) range
    key = active.c.order_key + 0 if sqlite else active.c.order_key
    return (
        select(func.min(active.c.id))
        .where(active.c.destination_id == destination_id, active.c.state.in_(ACTIVE))
        .group_by(key)
    )


def due(table: Any, now: datetime) -> ColumnElement[bool]:
    """Pending and its time has come, or in flight under a lease that ran out."""
    return or_(
        and_(table.c.state == PENDING, table.c.next_attempt_at <= now),
        and_(table.c.state == IN_FLIGHT, table.c.claimed_until < now),
    )


def next_due(session: Session, *, destination: str, now: datetime) -> datetime | None:
    """When the earliest row of ``destination`` not due yet becomes due: a retry's
    ``next_attempt_at``, or a lease running out (its worker may have died). None when
    there is no such row. Two reads by the (destination, state, next_attempt_at) index; an
    idle worker sleeps until then at most."""
    mine = destination_filter(session, destination)
    retry = session.scalar(
        select(func.min(_o.c.next_attempt_at)).where(
            mine, _o.c.state == PENDING, _o.c.next_attempt_at > now
        )
    )
    lease = session.scalar(
        select(func.min(_o.c.claimed_until)).where(
            mine, _o.c.state == IN_FLIGHT, _o.c.claimed_until >= now
        )
    )
    found = [t for t in (retry, lease) if t is not None]
    return min(found) if found else None


def current_bodies(
    session: Session, rows: list[OutboxRow]
) -> dict[tuple[str, str], tuple[int, bool, dict[str, Any]]]:
    """(type, id) -> (version, deleted, body) of the resources the rows are about (found
    by their resource_key)."""
    keys = sorted({r.resource_key for r in rows})
    if not keys:
        return {}
    found = session.execute(
        select(_r.c.resource_type, _r.c.id, _r.c.version_id, _r.c.deleted, _r.c.body).where(
            _r.c.resource_key.in_(keys)
        )
    )
    return {(t, i): (v, bool(d), b) for t, i, v, d, b in found}


def extend_lease(session: Session, ids: list[int], *, worker: str, until: datetime) -> None:
    if ids:
        session.execute(
            update(_o)
            .where(_o.c.id.in_(ids), _o.c.claimed_by == worker, _o.c.state == IN_FLIGHT)
            .values(claimed_until=until)
        )


def release(session: Session, ids: list[int], *, worker: str) -> None:
    """Give claimed rows back untouched (no attempt made), e.g. when stopping."""
    if ids:
        session.execute(
            update(_o)
            .where(_o.c.id.in_(ids), _o.c.claimed_by == worker, _o.c.state == IN_FLIGHT)
            .values(state=PENDING, claimed_by=None, claimed_until=None)
        )


def release_all(session: Session, *, destination: str | None = None) -> int:
    """Every in-flight row back to pending (SQLite: the only worker starting up)."""
    statement = update(_o).where(_o.c.state == IN_FLIGHT)
    if destination is not None:
        statement = statement.where(destination_filter(session, destination))
    result = session.execute(statement.values(state=PENDING, claimed_by=None, claimed_until=None))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def settle(session: Session, settlement: Settlement, *, worker: str) -> bool:
    """Record the attempt and move the row on. False when the row was no longer this
    worker's (its lease ran out and another worker took it): the attempt is still recorded."""
    return settlement.row.id in settle_many(session, [settlement], worker=worker)


def settle_many(session: Session, settlements: list[Settlement], *, worker: str) -> set[int]:
    """``settle`` for a batch: the attempts in one insert, the delivered rows in one UPDATE
    per send (same time and status; the version sent per row by a CASE), retries and dead
    letters one UPDATE each (rare). Returns the ids of the rows that were still this
    worker's and moved on; the others' attempts are recorded all the same."""
    if not settlements:
        return set()
    session.execute(_a.insert(), [_attempt(s, worker) for s in settlements])
    mine = and_(_o.c.claimed_by == worker, _o.c.state == IN_FLIGHT)
    settled: set[int] = set()
    sends: dict[tuple[datetime, str | None], list[Settlement]] = {}
    for s in settlements:
        if s.outcome == "delivered":
            sends.setdefault((s.attempted_at, s.status), []).append(s)
            continue
        error = _clip(s.error)
        values: dict[str, Any] = {**_moved(s), "last_error": error}
        if s.outcome == "retry":
            values.update(state=PENDING, next_attempt_at=s.next_attempt_at)
        else:
            values.update(state=OutboxState.DEAD.value)
        done = session.execute(update(_o).where(_o.c.id == s.row.id, mine).values(**values))
        if done.rowcount:  # type: ignore[attr-defined]
            settled.add(s.row.id)
    for group in sends.values():
        first = group[0]
        versions = {s.row.id: s.sent_version for s in group}
        done = session.execute(
            update(_o)
            .where(_o.c.id.in_(list(versions)), mine)
            .values(
                **_moved(first),
                state=OutboxState.DELIVERED.value,
                delivered_at=first.attempted_at,
                last_error=None,
                sent_version_id=case(versions, value=_o.c.id),
            )
            .returning(_o.c.id)
        )
        settled.update(done.scalars())
    return settled


def _moved(s: Settlement) -> dict[str, Any]:
    """What every settlement writes on its row, whatever the outcome."""
    return {
        "attempts": _o.c.attempts + 1,
        "last_attempt_at": s.attempted_at,
        "first_attempt_at": _first_attempt(s.attempted_at),
        "last_status": s.status,
        "claimed_by": None,
        "claimed_until": None,
    }


def _first_attempt(moment: datetime) -> ColumnElement[datetime]:
    """The row's first attempt, or ``moment``: bound as the column's type (a value inside
    a function call would be bound as a plain DATETIME, i.e. text on SQLite, where the
    column holds integer microseconds: decision 0079)."""
    return func.coalesce(_o.c.first_attempt_at, literal(moment, type_=_o.c.first_attempt_at.type))


def _attempt(s: Settlement, worker: str) -> dict[str, Any]:
    return {
        "outbox_id": s.row.id,
        "destination": s.row.destination,
        "attempted_at": s.attempted_at,
        "version_id": s.sent_version,
        "outcome": s.outcome,
        "status": s.status,
        "error": _clip(s.error),
        "operation_outcome": s.operation_outcome,
        "duration_ms": round(s.duration_ms, 3),
        "worker": worker,
    }


def settle_coalesced(session: Session, settlement: Settlement, *, worker: str) -> int:
    """After a delivery of a resource's current version, the other pending rows of that
    resource and destination (older versions, queued behind it) are delivered too."""
    return settle_coalesced_many(session, [settlement], worker=worker)


def settle_coalesced_many(session: Session, delivered: list[Settlement], *, worker: str) -> int:
    """``settle_coalesced`` for a batch's deliveries (one destination): one read finds the
    pending rows of every delivered resource; how many were marked delivered."""
    sent: dict[int, Settlement] = {}  # by resource_key
    for s in delivered:
        if s.sent_version is None:
            continue
        key = s.row.resource_key
        if key not in sent or (sent[key].sent_version or 0) < s.sent_version:
            sent[key] = s
    if not sent:
        return 0
    destination = delivered[0].row.destination
    batch = {s.row.id for s in delivered}
    # a resource's rows share its order key (its patient's): the (destination, state,
    # order_key) index finds them (decision 0070; no index on the resource any more)
    found = session.execute(
        select(_o.c.id, _o.c.resource_key, _o.c.version_id).where(
            destination_filter(session, destination),
            _o.c.state == PENDING,
            _o.c.order_key.in_(sorted({s.row.order_key for s in sent.values()})),
            _o.c.resource_key.in_(sorted(sent)),
        )
    ).all()
    groups: dict[tuple[datetime, str | None, int], list[int]] = {}
    attempts = []
    for row_id, resource_key, version in found:
        s = sent[resource_key]
        if row_id in batch or version > (s.sent_version or 0):
            continue
        groups.setdefault((s.attempted_at, s.status, int(s.sent_version or 0)), []).append(row_id)
        attempts.append(
            {
                "outbox_id": row_id,
                "destination": destination,
                "attempted_at": s.attempted_at,
                "version_id": s.sent_version,
                "outcome": "delivered",
                "status": s.status,
                "error": None,
                "operation_outcome": None,
                "duration_ms": 0.0,
                "worker": worker,
            }
        )
    if not attempts:
        return 0
    session.execute(_a.insert(), attempts)
    for (attempted_at, status, version), ids in groups.items():
        session.execute(
            update(_o)
            .where(_o.c.id.in_(ids), _o.c.state == PENDING)
            .values(
                state=OutboxState.DELIVERED.value,
                delivered_at=attempted_at,
                sent_version_id=version,
                attempts=_o.c.attempts + 1,
                last_attempt_at=attempted_at,
                first_attempt_at=_first_attempt(attempted_at),
                last_status=status,
                last_error=None,
            )
        )
    return len(attempts)


def _clip(text: str | None) -> str | None:
    if text is None or len(text) <= ERROR_MAX:
        return text
    return text[: ERROR_MAX - 1] + "…"

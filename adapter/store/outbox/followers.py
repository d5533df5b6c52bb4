"""Claiming the rows queued behind claimed heads, to go out in the same request.

``claim`` takes at most the head of each patient's queue, so a patient's k rows need k
round trips one after the other. A destination that applies one request in order or not
at all (a FHIR ``transaction`` Bundle: decision 0040, amended 2026-12-04 afternoon) can take
a head and the rows queued right behind it in one request. ``claim_followers`` adds them to
a claim that took fewer rows than its limit: for each claimed head in id order, the rows of
its order key that come next in the queue and are due, stopping at the first one that is
not (a retry waiting: it keeps the rows behind it waiting, as it would as a head).

Nobody else can claim these rows meanwhile: the claim only ever takes heads, and their
head is this worker's. Their state is tested again in the UPDATE all the same, and only an
unbroken run behind each head is kept (anything after a gap is given back).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from adapter.store.models import Outbox
from adapter.store.outbox.claim import ACTIVE, IN_FLIGHT, due, release
from adapter.store.outbox.rows import OutboxRow

_o = Outbox.__table__


def _is_due(
    state: str, next_attempt_at: datetime, claimed_until: datetime | None, now: datetime
) -> bool:
    if state == IN_FLIGHT:  # under an expired lease (its worker died)
        return claimed_until is not None and claimed_until < now
    return next_attempt_at <= now


def claim_followers(
    session: Session,
    heads: list[OutboxRow],
    *,
    worker: str,
    now: datetime,
    lease_seconds: float,
    limit: int,
) -> list[OutboxRow]:
    """Claim up to ``limit`` rows queued right behind ``heads`` (rows this worker has just
    claimed), each head's run in queue order, the heads in id order; they become
    ``in-flight``, owned by ``worker``, like the heads."""
    if limit <= 0 or not heads:
        return []
    destination = heads[0].destination
    by_key = {h.order_key: h.id for h in sorted(heads, key=lambda h: h.id)}
    queued = session.execute(
        select(_o.c.id, _o.c.order_key, _o.c.state, _o.c.next_attempt_at, _o.c.claimed_until)
        .where(
            _o.c.destination == destination,
            _o.c.state.in_(ACTIVE),
            _o.c.order_key.in_(list(by_key)),
            _o.c.id > min(by_key.values()),
        )
        .order_by(_o.c.id)
    ).all()
    runs: dict[str, list[int]] = {key: [] for key in by_key}
    stopped: set[str] = set()
    for row_id, key, state, next_attempt_at, claimed_until in queued:
        if key in stopped or row_id <= by_key[key]:
            continue
        if _is_due(state, next_attempt_at, claimed_until, now):
            runs[key].append(row_id)
        else:
            stopped.add(key)
    wanted: list[int] = []
    for key in by_key:  # heads in id order
        wanted.extend(runs[key][: limit - len(wanted)])
        if len(wanted) >= limit:
            break
    if not wanted:
        return []
    taken = {
        row["id"]: OutboxRow.of(row)
        for row in session.execute(
            update(_o)
            .where(_o.c.id.in_(wanted), due(_o, now))
            .values(
                state=IN_FLIGHT,
                claimed_by=worker,
                claimed_until=now + timedelta(seconds=lease_seconds),
            )
            .returning(*_o.c)
        ).mappings()
    }
    chosen = set(wanted)
    kept: list[OutboxRow] = []
    gaps: list[int] = []
    for key in by_key:
        broken = False
        for row_id in runs[key]:
            if row_id not in chosen:
                break
            if row_id not in taken:
                broken = True  # changed since the read: what comes after it waits
            elif broken:
                gaps.append(row_id)
            else:
                kept.append(taken[row_id])
    release(session, gaps, worker=worker)
    return kept

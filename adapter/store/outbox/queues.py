"""Claiming whole patient queues, to go out in one ordered request (decision 0070).

``claim`` takes at most the head of each patient's queue, so a patient's k rows need k
round trips one after the other. A destination that applies one request in order or not
at all (a FHIR ``transaction`` Bundle: decision 0040, amended 2026-12-04 afternoon) can take
a head and the rows queued right behind it in one request. ``claim_queues`` does that for
such a destination: the due heads in id order, each with the unbroken run of due rows
queued behind it (stopping at the first one that is not: a retry waiting keeps the rows
behind it waiting, as it would as a head), **up to half the claim per patient** while other
patients' heads are waiting, then the rest of the runs in head order while room is left.

So a message's rows for one destination usually go in one request and one
``delivery.delivered`` record, also behind a backlog (decision 0040 took heads first and
gave followers only the room left, so behind a backlog a message went out a row per claim);
and one patient's huge queue (a replayed history) still leaves half of every claim to the
others. The heads are read and, on PostgreSQL, locked ``FOR UPDATE SKIP LOCKED`` (the heads
not chosen stay pending, locked by this transaction until it commits); the chosen rows are
claimed in one UPDATE that tests each again. Nobody else can take a chosen head's followers:
claims only ever start at heads, and the head is this transaction's. If a row changed
between the read and the UPDATE, only the unbroken run before it is kept and anything after
it is given back.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from adapter.store.models import Outbox
from adapter.store.outbox.claim import ACTIVE, IN_FLIGHT, due, due_heads, release
from adapter.store.outbox.names import destination_filter, rows_of
from adapter.store.outbox.rows import OutboxRow

_o = Outbox.__table__


def _is_due(
    state: str, next_attempt_at: datetime, claimed_until: datetime | None, now: datetime
) -> bool:
    if state == IN_FLIGHT:  # under an expired lease (its worker died)
        return claimed_until is not None and claimed_until < now
    return next_attempt_at <= now


def patient_share(limit: int) -> int:
    """The most rows one order key gets in a claim while other heads are waiting."""
    return max(1, limit // 2)


def claim_queues(
    session: Session,
    *,
    destination: str,
    worker: str,
    now: datetime,
    lease_seconds: float,
    limit: int,
) -> list[OutboxRow]:
    """Claim up to ``limit`` due rows of ``destination``: heads in id order, each with the
    due rows queued right behind it (``patient_share`` per head first, then the rest while
    room is left); they become ``in-flight``, owned by ``worker``. In id order."""
    planned = session.execute(
        due_heads(session, destination=destination, now=now, limit=limit, key=True)
    ).all()
    if not planned:
        return []
    by_key = {key: head for head, key in planned}  # heads in id order
    runs = _runs(session, destination, by_key, now)
    chosen = _choose(by_key, runs, limit)
    wanted = [row_id for key in chosen for row_id in (by_key[key], *runs[key][: chosen[key]])]
    taken = {
        row.id: row
        for row in rows_of(
            session,
            session.execute(
                update(_o)
                .where(_o.c.id.in_(wanted), due(_o, now))
                .values(
                    state=IN_FLIGHT,
                    claimed_by=worker,
                    claimed_until=now + timedelta(seconds=lease_seconds),
                )
                .returning(*_o.c)
            ).mappings(),
            destination,
        )
    }
    kept: list[OutboxRow] = []
    gaps: list[int] = []
    for key, count in chosen.items():
        broken = False
        for row_id in (by_key[key], *runs[key][:count]):
            if row_id not in taken:
                broken = True  # changed since the read: what comes after it waits
            elif broken:
                gaps.append(row_id)
            else:
                kept.append(taken[row_id])
    release(session, gaps, worker=worker)
    kept.sort(key=lambda r: r.id)
    return kept


def _runs(
    session: Session, destination: str, by_key: dict[int, int], now: datetime
) -> dict[int, list[int]]:
    """The unbroken run of due rows queued behind each head, in queue order. A head is its
    key's lowest active id, so the key's active rows are the head and those behind it."""
    queued = session.execute(
        select(_o.c.id, _o.c.order_key, _o.c.state, _o.c.next_attempt_at, _o.c.claimed_until).where(
            destination_filter(session, destination),
            _o.c.state.in_(ACTIVE),
            _o.c.order_key.in_(list(by_key)),
        )
    ).all()
    queued.sort()  # by id (sorted here: an ORDER BY id makes SQLite walk the table by id)
    runs: dict[int, list[int]] = {key: [] for key in by_key}
    stopped: set[int] = set()
    for row_id, key, state, next_attempt_at, claimed_until in queued:
        if key in stopped or row_id <= by_key[key]:
            continue
        if _is_due(state, next_attempt_at, claimed_until, now):
            runs[key].append(row_id)
        else:
            stopped.add(key)
    return runs


def _choose(by_key: dict[int, int], runs: dict[int, list[int]], limit: int) -> dict[int, int]:
    """How many followers each chosen head takes (heads in id order): first up to
    ``patient_share`` rows a head, then, when every head has its share and room is left,
    the rest of the runs in head order."""
    share = patient_share(limit)
    chosen: dict[int, int] = {}
    room = limit
    for key in by_key:
        if room <= 0:
            break
        chosen[key] = min(len(runs[key]), share - 1, room - 1)
        room -= 1 + chosen[key]
    for key in chosen:
        more = min(len(runs[key]) - chosen[key], room)
        chosen[key] += more
        room -= more
    return chosen

"""The outbox's retention (decision 0064): delivered rows settled before a cut-off, and
their attempts, deleted in batches of bounded size, one short transaction each.

Only ``delivered`` rows go: ``pending`` and ``in-flight`` rows are still to send and
``dead`` rows wait for an operator's replay. What the deleted rows leave behind:

* the destination's sequence counter lives in ``delivery_destination.last_sequence``, so
  numbers go on from where they were (never again, never back);
* whether a resource changed is decided on the stored resource, never on the outbox, so a
  pruned history is not sent again;
* ``delivered_message`` keeps one (message, destination) pair per pruned message for the
  nightly reconciliation (``acks.acknowledgements``), and ``delivery_destination`` counts
  the pruned rows (``pruned_total``) next to its running totals;
* the evidence of each send stays in the audit log (``delivery.delivered`` events).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import ColumnElement, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from adapter.store.models import (
    DeliveredMessage,
    DeliveryAttempt,
    DeliveryDestination,
    Outbox,
    OutboxState,
)
from adapter.store.outbox.destinations import ensure
from adapter.store.outbox.names import destination_names

_o = Outbox.__table__
_a = DeliveryAttempt.__table__
_d = DeliveryDestination.__table__
_m = DeliveredMessage.__table__
DELIVERED = OutboxState.DELIVERED.value


@dataclass(frozen=True, slots=True)
class Pruned:
    """What one batch deleted (or, counted, would delete); ``last``: the batch's latest
    ``next_attempt_at``, where the next batch starts (``prune_batch(since=...)``)."""

    rows: int
    attempts: int
    last: datetime | None = None


def _old(cutoff: datetime) -> list[ColumnElement[bool]]:
    # next_attempt_at (set when queued, never after the delivery) lets the (state,
    # next_attempt_at) index find the candidates: a range of the delivered rows, not a walk
    # through the whole table; delivered_at then says whether the row settled before the
    # cut-off (a row queued before it may have been delivered after it)
    return [
        _o.c.state == DELIVERED,
        _o.c.next_attempt_at < cutoff,
        _o.c.delivered_at < cutoff,
    ]


def count_prunable(session: Session, cutoff: datetime) -> Pruned:
    """How many rows (and attempts) a prune at ``cutoff`` would delete (``--dry-run``)."""
    rows = session.scalar(select(func.count()).select_from(_o).where(*_old(cutoff))) or 0
    attempts = (
        session.scalar(
            select(func.count())
            .select_from(_a)
            .where(_a.c.outbox_id.in_(select(_o.c.id).where(*_old(cutoff))))
        )
        or 0
    )
    return Pruned(int(rows), int(attempts))


def prune_batch(
    session: Session, cutoff: datetime, *, limit: int, since: datetime | None = None
) -> Pruned:
    """Delete up to ``limit`` delivered rows settled before ``cutoff`` and their attempts,
    oldest first (from ``since``: the previous batch's ``last``), and note their messages
    as acknowledged. The caller commits (one batch, one short transaction). On PostgreSQL
    the rows are locked first, skipping rows another transaction holds (a replay under
    way): such a row waits for the next prune.

    The order and the lower bound keep each batch an index range scan: without them
    PostgreSQL reads the table in its physical order and every batch would pass again
    over the rows the batches before it deleted (dead until VACUUM)."""
    postgres = session.get_bind().dialect.name == "postgresql"
    where = _old(cutoff)
    if since is not None:
        where.append(_o.c.next_attempt_at >= since)
    chosen = (
        select(_o.c.id, _o.c.destination_id, _o.c.message_id, _o.c.next_attempt_at)
        .where(*where)
        .order_by(_o.c.next_attempt_at)
        .limit(limit)
    )
    if postgres:
        chosen = chosen.with_for_update(skip_locked=True)
    rows = session.execute(chosen).all()
    if not rows:
        return Pruned(0, 0)
    names = destination_names(session, {row[1] for row in rows})
    found = [(row_id, names[key], message) for row_id, key, message, _ in rows]
    last = rows[-1][3]
    ids = [row_id for row_id, _, _ in found]
    attempts = session.execute(delete(_a).where(_a.c.outbox_id.in_(ids)))
    session.execute(delete(_o).where(_o.c.id.in_(ids), _o.c.state == DELIVERED))
    pairs = sorted({(m, d) for _, d, m in found if m is not None})
    if pairs:
        rows = [{"message_id": m, "destination": d} for m, d in pairs]
        insert = (postgresql if postgres else sqlite).insert(_m)
        session.execute(insert.on_conflict_do_nothing(), rows)
    now = datetime.now(UTC)
    for destination, count in sorted(Counter(d for _, d, _ in found).items()):
        ensure(session, destination, now)  # a worker made it; a restored database may not
        session.execute(
            update(_d)
            .where(_d.c.destination == destination)
            .values(pruned_total=_d.c.pruned_total + count)
        )
    return Pruned(len(ids), int(attempts.rowcount or 0), last)  # type: ignore[attr-defined]


def pruned_totals(session: Session) -> dict[str, int]:
    """destination -> delivered rows pruned so far."""
    return {
        name: int(total)
        for name, total in session.execute(select(_d.c.destination, _d.c.pruned_total))
        if total
    }


def pruned_acknowledged(
    session: Session, message_ids: list[str]
) -> dict[str, set[str]]:  # message id -> destinations
    """The destinations each message's delivered rows were pruned from."""
    found: dict[str, set[str]] = {}
    for start in range(0, len(message_ids), 500):
        rows = session.execute(
            select(_m.c.message_id, _m.c.destination).where(
                _m.c.message_id.in_(message_ids[start : start + 500])
            )
        )
        for message_id, destination in rows:
            found.setdefault(message_id, set()).add(destination)
    return found

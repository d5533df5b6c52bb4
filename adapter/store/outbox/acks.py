"""What each destination acknowledged of the resources some messages made (the third column
of the nightly reconciliation, adapter/sync/reconcile.py), and sending a message's dead
deliveries again (``adapter sync --replay-gaps``)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from adapter.store.models import Outbox, OutboxState
from adapter.store.outbox.names import destination_names
from adapter.store.outbox.prune import pruned_acknowledged
from adapter.store.outbox.replay import _reset

_o = Outbox.__table__
_CHUNK = 500  # bound parameters per IN list (SQLite allows 32766; keep statements small)


def acknowledgements(session: Session, message_ids: Iterable[str]) -> dict[str, dict[str, str]]:
    """Per message id and destination: ``delivered`` (every row acknowledged), ``dead``
    (some row given up) or ``pending`` (queued or being sent). Messages whose resources made
    no outbox row (unchanged, or routed nowhere) are absent. Rows pruned by the retention
    count as the delivered rows they were (``delivered_message``)."""
    found: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    ids = list(dict.fromkeys(message_ids))
    for start in range(0, len(ids), _CHUNK):
        rows = session.execute(
            # each (message, destination, state) once: a message has a row per resource
            # version routed (about 10 a lab report), the reconciliation of a 50,000-document
            # night read half a million rows to keep 50,000
            select(_o.c.message_id, _o.c.destination_id, _o.c.state)
            .where(_o.c.message_id.in_(ids[start : start + _CHUNK]))
            .distinct()
        ).all()
        names = destination_names(session, {row[1] for row in rows})
        for message_id, destination_id, state in rows:
            found[message_id][names[destination_id]].add(state)
    # delivered rows the retention pruned (decision 0064) are still acknowledgements
    for message_id, destinations in pruned_acknowledged(session, ids).items():
        for destination in destinations:
            found[message_id][destination].add(OutboxState.DELIVERED.value)
    answer: dict[str, dict[str, str]] = {}
    for message_id, by_destination in found.items():
        answer[message_id] = {
            destination: (
                "dead"
                if OutboxState.DEAD.value in states
                else "delivered"
                if states == {OutboxState.DELIVERED.value}
                else "pending"
            )
            for destination, states in by_destination.items()
        }
    return answer


def requeue_dead(session: Session, message_ids: Iterable[str], *, now: datetime) -> int:
    """Put the dead deliveries of these messages back to pending; returns how many."""
    ids = list(dict.fromkeys(message_ids))
    total = 0
    for start in range(0, len(ids), _CHUNK):
        result = session.execute(
            update(_o)
            .where(
                _o.c.message_id.in_(ids[start : start + _CHUNK]),
                _o.c.state == OutboxState.DEAD.value,
            )
            .values(**_reset(now))
        )
        total += int(result.rowcount or 0)  # type: ignore[attr-defined]
    return total

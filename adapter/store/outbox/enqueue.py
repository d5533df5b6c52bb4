"""Queueing deliveries: resource versions still to deliver, written in the ingest transaction."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from adapter.store.fast_insert import insert_rows
from adapter.store.models import Outbox, OutboxState
from adapter.store.outbox.names import destination_ids, destination_names
from adapter.store.outbox.wake import notify
from adapter.store.resources import held_writes

_outbox = Outbox.__table__


def enqueue(
    session: Session,
    *,
    destination: str,
    resource_type: str,
    resource_id: str,
    version_id: int,
    patient_key: str | None,
    message_id: str | None = None,
    now: datetime | None = None,
) -> None:
    """One pending delivery, due now."""
    enqueue_many(
        session,
        [
            {
                "destination": destination,
                "resource_type": resource_type,
                "resource_id": resource_id,
                "version_id": version_id,
                "patient_key": patient_key,
                "message_id": message_id,
            }
        ],
        now=now,
    )


def enqueue_many(
    session: Session, items: list[dict[str, Any]], *, now: datetime | None = None
) -> None:
    """Several pending deliveries in one statement; each item has the ``enqueue`` fields,
    and may have ``reason`` (why the destination gets it), ``person_id`` and
    ``care_facility`` (routed by that facility's care of that person). On PostgreSQL the
    workers listening for these destinations are woken when the transaction commits."""
    if not items:
        return
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    for item in items:
        patient = item.get("patient_key")
        if patient is not None and not patient.startswith("Patient/"):
            raise ValueError(f"an outbox row's patient is Patient/<id>, not {patient!r}")
    ids = destination_ids(session, {item["destination"] for item in items})
    rows = [
        {
            "destination_id": ids[item["destination"]],
            "resource_type": item["resource_type"],
            "resource_id": item["resource_id"],
            "version_id": item["version_id"],
            "message_id": item.get("message_id"),
            "reason": item.get("reason"),
            "person_id": item.get("person_id"),
            "care_facility": item.get("care_facility"),
            "order_key": order_key(
                item["resource_type"], item["resource_id"], item.get("patient_key")
            ),
            "state": OutboxState.PENDING.value,
            "attempts": 0,
            "next_attempt_at": moment,
            "created_at": moment,
            "last_error": None,
        }
        for item in items
    ]
    writes = held_writes(session)
    if writes is not None:  # a bulk batch: written at its commit (decision 0047)
        writes.add_outbox(rows)
        return
    insert_outbox_rows(session, rows)


def insert_outbox_rows(session: Session, rows: list[dict[str, Any]]) -> None:
    """Insert ``enqueue_many``'s rows: one statement, and one notification."""
    insert_rows(session, _outbox, rows)
    if session.get_bind().dialect.name == "postgresql":  # wakes idle workers
        names = destination_names(session, {row["destination_id"] for row in rows})
        notify(session, names.values())


def order_key(resource_type: str, resource_id: str, patient_key: str | None) -> str:
    """Deliveries with one key go out in the order they were queued: the patient's, or the
    resource's own for resources about no patient. The row's patient is read back from it
    (``rows.patient_of``: the patient key is not stored twice, decision 0075)."""
    return patient_key or f"{resource_type}/{resource_id}"

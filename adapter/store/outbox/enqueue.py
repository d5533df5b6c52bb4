"""Queueing deliveries: resource versions still to deliver, written in the ingest transaction."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from adapter.store.fast_insert import insert_rows
from adapter.store.keys import keys_in
from adapter.store.models import Outbox, OutboxState, Resource
from adapter.store.outbox.names import destination_ids, destination_names
from adapter.store.outbox.wake import notify
from adapter.store.resources import held_writes

_outbox = Outbox.__table__
_resource = Resource.__table__


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
    and may have ``resource_key`` (the resource's, from its ``Saved``: else read here; the
    resource must be stored, or held by this bulk batch), ``reason`` (why the destination
    gets it), ``person_id`` and ``care_facility`` (routed by that facility's care of that
    person). On PostgreSQL the workers listening for these destinations are woken when the
    transaction commits."""
    if not items:
        return
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    for item in items:
        patient = item.get("patient_key")
        if patient is not None and not patient.startswith("Patient/"):
            raise ValueError(f"an outbox row's patient is Patient/<id>, not {patient!r}")
    ids = destination_ids(session, {item["destination"] for item in items})
    writes = held_writes(session)
    keys = _resource_keys(session, items, writes)
    pending = OutboxState.PENDING.value  # (an enum's value is a property: read once, 0155)
    rows = []
    for item in items:
        get = item.get
        resource = (item["resource_type"], item["resource_id"])
        patient = get("patient_key")
        rows.append(
            {
                "destination_id": ids[item["destination"]],
                "resource_key": keys[resource],
                "version_id": item["version_id"],
                "message_id": get("message_id"),
                "reason": get("reason"),
                "person_id": get("person_id"),
                "care_facility": get("care_facility"),
                # ``order_key``'s text: the patient's, else the resource's own
                "order_key": order_hash(patient or f"{resource[0]}/{resource[1]}"),
                "state": pending,
                "attempts": 0,
                "next_attempt_at": moment,
                "created_at": moment,
                "last_error": None,
            }
        )
    if writes is not None:  # a bulk batch: written at its commit (decision 0047)
        writes.add_outbox(rows)
        return
    insert_outbox_rows(session, rows)


def _resource_keys(
    session: Session, items: list[dict[str, Any]], writes: Any
) -> dict[tuple[str, str], int]:
    """(type, id) -> resource_key of the items' resources: given with the item, else held
    by the bulk batch (new rows it writes at its commit), else stored."""
    keys: dict[tuple[str, str], int] = {}
    for item in items:
        if item.get("resource_key") is not None:
            keys[(item["resource_type"], item["resource_id"])] = item["resource_key"]
    wanted = {(i["resource_type"], i["resource_id"]) for i in items} - keys.keys()
    if wanted and writes is not None:
        for row in writes.created:
            key = (row["resource_type"], row["id"])
            if key in wanted:
                keys[key] = row["resource_key"]
        wanted -= keys.keys()
    if wanted:
        found = session.execute(
            select(_resource.c.resource_type, _resource.c.id, _resource.c.resource_key).where(
                keys_in(_resource.c.resource_type, _resource.c.id, wanted)
            )
        )
        keys.update(((t, i), k) for t, i, k in found)
        missing = wanted - keys.keys()
        if missing:
            shown = ", ".join(f"{t}/{i}" for t, i in sorted(missing)[:3])
            raise ValueError(f"an outbox row's resource must be stored; not stored: {shown}")
    return keys


def insert_outbox_rows(session: Session, rows: list[dict[str, Any]]) -> None:
    """Insert ``enqueue_many``'s rows: one statement, and one notification."""
    insert_rows(session, _outbox, rows)
    if session.get_bind().dialect.name == "postgresql":  # wakes idle workers
        names = destination_names(session, {row["destination_id"] for row in rows})
        notify(session, names.values())


def order_key(resource_type: str, resource_id: str, patient_key: str | None) -> int:
    """Deliveries with one key go out in the order they were queued: the patient's, or the
    resource's own for resources about no patient (``order_hash`` of that text)."""
    return order_hash(patient_key or f"{resource_type}/{resource_id}")


# a message's outbox rows share its patient's key (about 11 rows a lab message)
@lru_cache(maxsize=4096)
def order_hash(text: str) -> int:
    """The first 8 bytes of the SHA-256 of ``text`` (UTF-8) as a signed big-endian 64-bit
    integer (a BIGINT); migration 0035 computes the same in SQL on PostgreSQL. Two texts
    with one hash only share a queue: their rows go out in id order together (decision
    0084). Needs no lookup, so a patient the store never received has a key too."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big", signed=True)

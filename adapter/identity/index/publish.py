"""Identity changes leave like any other resource: the persons whose FHIR Patient changed
are saved as new versions (unchanged content keeps its version) and one outbox row is
written per changed person and destination subscribed to the identity feed
(``patient_index.deliver_to`` in the consortium file)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from adapter.identity.index.person import person_resource
from adapter.store import enqueue_many, lock_resources, save_resources
from adapter.store.resources import Saved


def publish_persons(
    session: Session,
    person_ids: Iterable[str],
    *,
    now: datetime,
    message_id: str | None = None,
) -> list[Saved]:
    bodies = [person_resource(session, pid) for pid in sorted(set(person_ids))]
    if not bodies:
        return []
    keys = [("Patient", b["id"]) for b in bodies]
    locked = lock_resources(session, keys, create_missing=keys, now=now)
    return save_resources(session, bodies, message_id=message_id, now=now, locked=locked)


def outbox_rows(
    saved: list[Saved], destinations: Iterable[str], message_id: str | None = None
) -> list[dict[str, Any]]:
    return [
        {
            "destination": destination,
            "resource_type": item.resource_type,
            "resource_id": item.id,
            "resource_key": item.resource_key,
            "version_id": item.version_id,
            "patient_key": item.patient_key,
            "message_id": message_id,
        }
        for item in saved
        if item.changed
        for destination in destinations
    ]


def publish_and_enqueue(
    session: Session, person_ids: Iterable[str], *, destinations: list[str], now: datetime
) -> list[Saved]:
    """For changes outside a message (review decisions, merges, unmerges)."""
    saved = publish_persons(session, person_ids, now=now)
    rows = outbox_rows(saved, destinations)
    if rows:
        enqueue_many(session, rows, now=now)
    return saved

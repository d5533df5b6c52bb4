"""Outbox rows for resource versions stored outside a message's pipeline (a referral Task
moved over the API, results re-marked by ``adapter recognition mark``): the destinations the
facility's resources go to by static routes, and, routing by care, the facilities caring
for the person the version is about."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from adapter.consortium import Consortium
from adapter.identity import person_of, records_of
from adapter.routing.care import recipients
from adapter.store import care
from adapter.store.resources import Saved


def outbox_rows_for_versions(
    session: Session,
    consortium: Consortium,
    made: list[Saved],
    facility: str,
    now: datetime,
    *,
    message_id: str | None = None,
    person_of_version: Callable[[Saved], str | None] | None = None,
) -> list[dict[str, Any]]:
    """``person_of_version``: the person a version is about when its patient key does not
    say (a referral Task names its patient in ``for``); else the patient key's person."""
    rows: list[dict[str, Any]] = []
    for item in made:
        person = person_of_version(item) if person_of_version is not None else None
        if person is None and item.patient_key:
            person = person_of(session, item.patient_key.split("/", 1)[1])
        caring = (
            care.caring(session, {person, *records_of(session, person)}, now) if person else None
        )
        origin = facility if consortium.facility(facility) else ""
        for recipient in recipients(consortium, origin, item.resource_type, caring):
            rows.append(
                {
                    "destination": recipient.destination,
                    "resource_type": item.resource_type,
                    "resource_id": item.id,
                    "resource_key": item.resource_key,
                    "version_id": item.version_id,
                    "patient_key": item.patient_key,
                    "message_id": message_id,
                    "reason": recipient.reason,
                    "person_id": person if recipient.care_facility else None,
                    "care_facility": recipient.care_facility,
                }
            )
    return rows

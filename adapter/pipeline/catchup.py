"""What a facility that starts caring for a person gets of the person's history, once: the
Patient records, the results of the last ``care.catch_up.results_days`` days and the newest
discharge summary (consortium file ``care.catch_up``, docs/routing.md).

Care starts in two ways: a message shows it (a referral names the facility: the pipeline's
``route`` step), or the patient index joins records (a merge, a review decided ``match``):
then each facility caring for one side starts caring for the records of the other side
(``IdentityCare``). Both write outbox rows with the reason ``catch-up: <facility> started
caring (...)``. No commits here.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from adapter.consortium import Consortium
from adapter.identity import keys_of, person_of, records_of
from adapter.routing import routes_by_care
from adapter.store import care, enqueue_many

DISCHARGE_SUMMARY = "18842-5"  # LOINC: the discharge summary Composition's type
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def history_rows(
    session: Session,
    consortium: Consortium,
    facility: str,
    patients: Iterable[str],
    *,
    moment: datetime,
    why: str,
    person: str,
    message_id: str | None = None,
    skip: set[Any] | None = None,
) -> list[dict[str, Any]]:
    """Outbox rows of the history of ``patients`` ("Patient/<id>") for the facility's enabled
    destinations; nothing when catch-up is off or the facility has no destination."""
    settings = consortium.care.catch_up
    config = consortium.facility(facility)
    destinations = [d.id for d in config.destinations if d.enabled] if config else []
    keys = sorted(set(patients))
    if not settings.enabled or not destinations or not keys:
        return []
    found = care.history_of(session, keys, types=["Patient"], since=_EPOCH)
    since = moment - timedelta(days=settings.results_days)
    found += care.history_of(session, keys, types=settings.result_types, since=since)
    if settings.last_discharge_summary:
        found += care.last_document(session, keys, loinc=DISCHARGE_SUMMARY)
    return [
        {
            "destination": destination,
            "resource_type": resource_type,
            "resource_id": resource_id,
            "version_id": version,
            "patient_key": patient,
            "message_id": message_id,
            "reason": why,
            "person_id": person,
            "care_facility": facility,
        }
        for resource_type, resource_id, version, patient in found
        if (resource_type, resource_id) not in (skip or set())
        for destination in destinations
    ]


class IdentityCare:
    """Catch-up after the index joins records: take ``IdentityCare(...)`` before a merge or a
    review decision, ``finish(changed persons)`` after it, in the same transaction. A
    facility that cared for some of a person's records, and now cares for the person,
    gets the history of the records it did not care for before."""

    def __init__(
        self, session: Session, consortium: Consortium, persons: Iterable[str], now: datetime
    ) -> None:
        self.session, self.consortium, self.now = session, consortium, now
        # record -> the facilities that cared for it (through its person) before the change
        self.before: dict[str, set[str]] = {}
        if not routes_by_care(consortium):
            return
        for person in {person_of(session, p) for p in persons}:
            caring = set(care.caring(session, keys_of(session, person), now))
            for record in records_of(session, person):
                self.before[record] = caring

    def finish(self, changed: Iterable[str], *, reason: str) -> int:
        """Queue the catch-up rows; returns how many."""
        if not routes_by_care(self.consortium):
            return 0
        rows: list[dict[str, Any]] = []
        for person in sorted(set(changed)):
            caring = care.caring(self.session, keys_of(self.session, person), self.now)
            records = records_of(self.session, person)
            for facility in sorted(caring):
                new = [f"Patient/{r}" for r in records if facility not in self.before.get(r, ())]
                if len(new) == len(records):
                    continue  # it cares for none of the records before: not through this
                why = f"catch-up: {facility} started caring ({reason})"
                rows += history_rows(
                    self.session,
                    self.consortium,
                    facility,
                    new,
                    moment=self.now,
                    why=why,
                    person=person,
                )
        if rows:
            enqueue_many(self.session, rows, now=self.now)
        return len(rows)

"""The per-patient disclosure report (PIPL art. 28-29 requests): who received or read this
person's data, when, why, with what outcome, from the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from adapter.store.audit_log import AuditRecord, linked

# the actions that hand a patient's data to someone outside the adapter
DISCLOSING = ("delivery.delivered", "fhir.read", "fhir.search")


def patient_reference(value: str) -> str:
    return value if value.startswith("Patient/") else f"Patient/{value}"


def person_references(session: Session, patient: str) -> list[str]:
    """``patient`` and every other Patient record the patient index links to the same
    person (a PIPL request is about the person, whichever facility's record it names)."""
    from adapter.identity.persons import person_of, records_of

    given = patient_reference(patient).removeprefix("Patient/")
    records = records_of(session, person_of(session, given))
    return [patient_reference(r) for r in dict.fromkeys([given, *records])]


def records_about(references: list[str]) -> Select[tuple[AuditRecord]]:
    """The records naming one of the Patient ``references``."""
    return select(AuditRecord).where(linked("patient", references))


def disclosures(
    session: Session,
    patient: str | list[str],
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    every_action: bool = False,
) -> list[dict[str, Any]]:
    """One entry per disclosure of the data of ``patient`` (one reference or several: a
    person's records), oldest first (``every_action``: every audited event about the
    patient, attempts and receipts included)."""
    references = [
        patient_reference(p) for p in ([patient] if isinstance(patient, str) else patient)
    ]
    query = records_about(references).order_by(AuditRecord.seq)
    if not every_action:
        query = query.where(AuditRecord.action.in_(DISCLOSING))
    if since is not None:
        query = query.where(AuditRecord.recorded >= since)
    if until is not None:
        query = query.where(AuditRecord.recorded < until)
    found = []
    for record in session.execute(query).scalars():
        body = orjson.loads(record.body)
        detail = body.get("detail") or {}
        found.append(
            {
                "seq": record.seq,
                "when": body["recorded"],
                "action": record.action,
                "outcome": record.outcome,
                # to whom: the destination of a delivery, else the reader
                "to": detail.get("destination") or record.client or record.actor,
                "by": record.actor,
                "facility": record.facility,
                "address": record.address,
                "why": detail.get("purpose") or _purpose(record.action),
                # a search's results may be about other patients too: only their count
                "resources": []
                if record.action == "fhir.search"
                else [e for e in body.get("entities") or () if _about(e)],
                "results": detail.get("results"),
                "correlation_id": record.correlation_id,
            }
        )
    return found


def _purpose(action: str) -> str:
    # purpose of use (v3 ActReason): treatment, until clients declare their own purpose
    return "TREAT" if action.startswith(("delivery.", "fhir.")) else "HOPERAT"


def _about(entity: str) -> bool:
    return not entity.startswith("InboundMessage/")

"""The pipeline step ``note_referral_ledger`` (after ``advance_referrals``): every referral
Task the message stored or moved gets its ledger row (adapter/referral/ledger.py), and an
Encounter of the sending facility after an up-referred patient's discharge is the
sender's follow-up (随访) of that referral.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import Select, String, bindparam, select

from adapter.errors import Issue
from adapter.fhir.dates import parse_range
from adapter.referral import ledger
from adapter.referral.messages import records_about
from adapter.store.models import ReferralLedger

if TYPE_CHECKING:
    from adapter.pipeline.steps import Work


def note_referral_ledger(work: Work) -> None:
    for item in list(work.saved):
        if item.resource_type == "Task" and item.changed:
            ledger.note_task(
                work.session, work.consortium, item.body, at=work.moment, zone=work.zone
            )
        elif item.resource_type == "Encounter" and item.changed:
            _follow_up(work, item.body)


def _follow_up(work: Work, encounter: dict[str, object]) -> None:
    """An Encounter at the sender after the receiver discharged the up-referred patient:
    the sender's follow-up (the first one counts for the 5-day deadline)."""
    subject = str((encounter.get("subject") or {}).get("reference") or "")  # type: ignore[union-attr]
    start = ((encounter.get("period") or {}) or {}).get("start")  # type: ignore[union-attr]
    if not subject.startswith("Patient/") or not start:
        return
    try:
        began = parse_range(str(start), work.zone)[0]
    except ValueError:
        return
    records = records_about(work, subject)
    found = work.core(AWAITING, {"records": records, "sender": work.facility.id})
    # nearly always none: a Core read, and the ORM rows only for what it found
    rows = [work.session.get(ReferralLedger, task_id) for task_id in found.scalars().all()]
    for row in rows:
        if row is None:
            continue
        if row.discharged_at is not None and began >= row.discharged_at:
            reference = f"Encounter/{encounter.get('id')}"
            ledger.record_follow_up(work.session, work.consortium, row, at=began, record=reference)
            work.issues.append(
                Issue(
                    "information",
                    "informational",
                    f"referral Task/{row.task_id}: the sender's follow-up is {reference}",
                    location=reference,
                )
            )


def _awaiting_statement() -> Select[tuple[str]]:
    """The Task ids of the up-referrals of the records ``records`` sent by ``sender``,
    discharged and not yet followed up; built once (Core: it runs for every Encounter).
    Led by the ledger's patient index (migration 0020): the sender's index read every
    referral the facility ever sent, for every Encounter stored, and SQLite without
    statistics still prefers it to the patient index for an ``IN`` of several records, so
    ``sender_facility || ''`` keeps it out of the plan."""
    ledger_ = ReferralLedger.__table__
    return select(ledger_.c.task_id).where(
        ledger_.c.patient_id.in_(bindparam("records", expanding=True)),
        ledger_.c.direction != "down",
        ledger_.c.sender_facility.concat("") == bindparam("sender", type_=String),
        ledger_.c.discharged_at.is_not(None),
        ledger_.c.followed_up_at.is_(None),
    )


AWAITING = _awaiting_statement()


def awaiting_follow_up(records: list[str], sender: str) -> Select[tuple[str]]:
    """``AWAITING`` with its parameters bound (its query plan is tested)."""
    return AWAITING.params(records=records, sender=sender)

"""Recording a follow-up (随访) of a referred patient by hand: the sender's after an
up- or same-level referral, the primary facility's (the receiver) after a down-referral
(docs/referral-loop.md, 时限). It is not a Task change (nothing after ``completed``,
decision 0031): it counts on the ledger row, moves its deadlines and is audited. The same
for ``adapter referrals follow-up`` and ``POST /referrals/{task}/follow-up``.
"""

from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy.orm import Session

from adapter.consortium import Consortium
from adapter.errors import InvalidRequestError, NotFoundError
from adapter.referral import ledger
from adapter.referral.apply import RefusedError, audit_referral
from adapter.referral.machine import Refusal
from adapter.store.models import ReferralLedger

# a follow-up record is a reference: Type/id (the sender's Encounter, a note ...)
RECORD = re.compile(r"^[A-Z][A-Za-z]{1,63}/[A-Za-z0-9\-.]{1,64}$")


def follow_up_side(row: ReferralLedger) -> str | None:
    """The facility that follows the patient up: the receiver of a down-referral (the
    primary facility), the sender of any other."""
    return row.receiver_facility if row.direction == "down" else row.sender_facility


def record_follow_up(
    session: Session,
    consortium: Consortium,
    task_id: str,
    facility: str,
    *,
    at: datetime,
    record: str | None = None,
) -> ReferralLedger:
    """Count one follow-up of Task ``task_id`` recorded by ``facility``. Refused (naming
    the rule) for a facility that is no party (403) or the party that does not follow up
    (409); 404 for a Task not in the ledger; 400 for a record that is not ``Type/id``."""
    if record is not None and not RECORD.match(record):
        raise InvalidRequestError(
            "the follow-up record is a reference Type/id, e.g. Encounter/123", location="record"
        )
    row = session.get(ReferralLedger, task_id, with_for_update=True)
    if row is None:
        raise NotFoundError(f"Task/{task_id} is not in the referral ledger", location="id")
    side = follow_up_side(row)
    if facility not in (row.sender_facility, row.receiver_facility):
        refused = Refusal(
            "party-not-involved",
            f"{facility} is neither the sender nor the receiver of this referral",
        )
        raise RefusedError(refused)
    if facility != side:
        refused = Refusal(
            "follow-up-by-sender" if row.direction != "down" else "follow-up-by-primary",
            f"the follow-up of this referral is recorded by {side}, not {facility}",
        )
        raise RefusedError(refused)
    ledger.record_follow_up(session, consortium, row, at=at, record=record)
    audit_follow_up(session, task_id, facility, at=at, row=row)
    return row


def audit_follow_up(
    session: Session,
    task_id: str,
    facility: str,
    *,
    at: datetime,
    row: ReferralLedger | None = None,
    refused: str | None = None,
) -> None:
    """The follow-up (or its refusal, naming the rule) in the audit log: references and
    counts only. Record a refusal in a transaction of its own (the refused one rolls back)."""
    patient = row.patient_id if row is not None else None
    audit_referral(
        session,
        task_id,
        facility,
        at=at,
        refused=refused,
        interaction="follow-up",
        detail={"follow_ups": row.follow_ups if row is not None else None},
        patient=f"Patient/{patient}" if patient else "",
    )

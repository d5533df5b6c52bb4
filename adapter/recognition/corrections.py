"""Results that changed after a doctor recognised them (结果更正): a decision 互认 refers to
a prior result; when that result is stored again later — corrected, amended, cancelled or
entered in error by its lab — the recognition was made on what the result said then. Such
decisions are listed so the ordering department can review them (and, where needed, order
the test after all); the decision itself is kept as made.

"Later" is against the time the adapter recorded the decision (``recorded_at``), not the
``decided-at`` an HIS may send, so a back-dated decision cannot hide a correction.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from adapter.store.models import RecognitionDecision, Resource

# what a lab's later version may say; "final" again with other values is a change too
WITHDRAWN = ("cancelled", "entered-in-error")
_CHUNK = 500


@dataclass(frozen=True, slots=True)
class ChangedAfter:
    task_id: str
    patient_id: str
    order_id: str
    item_code: str
    facility_id: str
    department: str | None
    doctor: str
    prior: str
    recognised_at: datetime
    changed_at: datetime
    status: str | None  # the result's status now
    version: int

    @property
    def withdrawn(self) -> bool:
        return self.status in WITHDRAWN

    def as_dict(self) -> dict[str, Any]:
        return {
            "task": f"Task/{self.task_id}",
            "patient": f"Patient/{self.patient_id}",
            "order": self.order_id,
            "item": self.item_code,
            "facility": self.facility_id,
            "department": self.department,
            "doctor": self.doctor,
            "prior": self.prior,
            "recognised_at": self.recognised_at.isoformat(),
            "changed_at": self.changed_at.isoformat(),
            "status": self.status,
            "version": self.version,
            "withdrawn": self.withdrawn,
        }


def changed_after_recognition(
    session: Session, *, facility_id: str | None = None, since: datetime | None = None
) -> list[ChangedAfter]:
    """Recognised decisions (decided since ``since``) whose prior result has a version
    stored after the decision was recorded, oldest decision first."""
    d = RecognitionDecision
    query = (
        select(d)
        .where(d.decision == "recognised", d.prior.is_not(None))
        .order_by(d.recorded_at, d.task_id)
    )
    if facility_id is not None:
        query = query.where(d.facility_id == facility_id)
    if since is not None:
        query = query.where(d.decided_at >= since)
    decisions = list(session.scalars(query))
    wanted: dict[str, set[str]] = defaultdict(set)
    for decision in decisions:
        rtype, _, rid = (decision.prior or "").partition("/")
        if rid:
            wanted[rtype].add(rid)
    current: dict[str, tuple[datetime, int, str | None]] = {}
    r = Resource
    for rtype, ids in wanted.items():
        listed = sorted(ids)
        for start in range(0, len(listed), _CHUNK):
            rows = session.execute(
                select(r.id, r.last_updated, r.version_id, r.body).where(
                    r.resource_type == rtype, r.id.in_(listed[start : start + _CHUNK])
                )
            )
            for rid, updated, version, body in rows:
                status = body.get("status") if isinstance(body, dict) else None
                current[f"{rtype}/{rid}"] = (updated, version, status)
    found = []
    for decision in decisions:
        now = current.get(decision.prior or "")
        if now is None or now[0] <= decision.recorded_at:
            continue
        found.append(
            ChangedAfter(
                task_id=decision.task_id,
                patient_id=decision.patient_id,
                order_id=decision.order_id,
                item_code=decision.item_code,
                facility_id=decision.facility_id,
                department=decision.department,
                doctor=decision.doctor,
                prior=decision.prior or "",
                recognised_at=decision.recorded_at,
                changed_at=now[0],
                status=now[2],
                version=now[1],
            )
        )
    return found

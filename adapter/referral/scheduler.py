"""The deadline scheduler (docs/referral-loop.md, 时限与超时工作清单): every ledger row whose
next deadline has passed goes on the overdue worklist for the party that must act (its
facility and department), both parties are told through the outbox (a ``Communication``
about the Task, delivered to every enabled destination of the sender and the receiver),
and a Task nobody touched is cancelled as 已过期 by the adapter.

Safe with several processes: on PostgreSQL each batch takes its rows ``FOR UPDATE SKIP
LOCKED`` (a second scheduler takes other rows, never the same one twice), and the
worklist is unique per (Task, deadline). SQLite has one writer at a time anyway.
``run_once(now=...)`` takes the clock as an argument: the tests move it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from adapter.consortium import Consortium
from adapter.referral import ledger
from adapter.referral.deadlines import RECEIVER, Due, label, owed
from adapter.store import enqueue_many, read_resource, save_resources
from adapter.store.models import ReferralLedger, ReferralOverdue

NOTICE_SYSTEM = "https://yigongti-fhir-adapter.github.io/fhir/CodeSystem/referral-notice"
NAMESPACE = uuid.UUID("6f1c2c49-54d4-4f0b-9a53-3c1f0e0a1c12")


@dataclass(slots=True)
class Report:
    listed: list[tuple[str, str]] = field(default_factory=list)  # (Task id, deadline)
    expired: list[str] = field(default_factory=list)
    notices: int = 0  # outbox rows queued

    def merge(self, other: Report) -> None:
        self.listed += other.listed
        self.expired += other.expired
        self.notices += other.notices


def run_once(
    factory: sessionmaker[Session], consortium: Consortium, *, now: datetime, batch: int = 200
) -> Report:
    """Every deadline passed by ``now``: on the worklist, notified, expired. One
    transaction per batch; rows handled in this run are not taken again."""
    report = Report()
    seen: set[str] = set()
    while True:
        with factory.begin() as session:
            query = (
                select(ReferralLedger)
                .where(ReferralLedger.next_due_at <= now)
                .order_by(ReferralLedger.next_due_at, ReferralLedger.task_id)
                .limit(batch)
            )
            if seen:
                query = query.where(ReferralLedger.task_id.not_in(sorted(seen)))
            if session.get_bind().dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            rows = list(session.scalars(query))
            for row in rows:
                seen.add(row.task_id)
                report.merge(handle(session, consortium, row, now))
        if len(rows) < batch:
            return report


def handle(session: Session, consortium: Consortium, row: ReferralLedger, now: datetime) -> Report:
    """One row: each breached deadline not yet listed goes on the worklist with a notice to
    both parties; an untouched Task past its expiry is cancelled (已过期)."""
    report = Report()
    listed = set(
        session.scalars(select(ReferralOverdue.kind).where(ReferralOverdue.task_id == row.task_id))
    )
    for due in owed(row, consortium.referrals.deadlines):
        if due.at > now or due.kind in listed:
            continue
        notice, queued = _notify(session, consortium, row, due, now)
        responsible = row.receiver_facility if due.party == RECEIVER else row.sender_facility
        department = row.receiver_department if due.party == RECEIVER else row.sender_department
        other = row.sender_facility if due.party == RECEIVER else row.receiver_facility
        session.add(
            ReferralOverdue(
                task_id=row.task_id,
                kind=due.kind,
                due_at=due.at,
                noticed_at=now,
                facility_id=responsible,
                department=department,
                other_facility=other,
                notice=notice,
            )
        )
        session.flush()
        report.listed.append((row.task_id, due.kind))
        report.notices += queued
        if due.kind == "expire":
            _expire(session, consortium, row, now)
            report.expired.append(row.task_id)
    ledger.schedule(session, consortium, row, now)
    return report


def _expire(session: Session, consortium: Consortium, row: ReferralLedger, now: datetime) -> None:
    from adapter.referral.apply import RefusedError, apply_change
    from adapter.referral.machine import ADAPTER, Change

    try:
        apply_change(
            session,
            consortium,
            row.task_id,
            Change("cancelled", "expired", at=now),
            ADAPTER,
            now=now,
        )
    except RefusedError:  # moved meanwhile (it was answered): nothing to expire
        return


def _notify(
    session: Session, consortium: Consortium, row: ReferralLedger, due: Due, now: datetime
) -> tuple[str, int]:
    """A Communication about the Task to both parties (no patient name: the slip number,
    the step, the deadline and who must act)."""
    task = read_resource(session, "Task", row.task_id) or {}
    who = "接收方" if due.party == RECEIVER else "转出方"
    text = (
        f"转诊单 {row.slip_number or row.task_id} 超时：{label(due.kind)} 应于 "
        f"{due.at.isoformat(timespec='minutes')} 前由{who}完成"
    )
    notice_id = str(uuid.uuid5(NAMESPACE, f"{row.task_id}/{due.kind}"))
    communication: dict[str, Any] = {
        "resourceType": "Communication",
        "id": notice_id,
        "status": "completed",
        "category": [
            {"coding": [{"system": NOTICE_SYSTEM, "code": "overdue", "display": "转诊超时"}]}
        ],
        "priority": "urgent" if row.emergency or row.green_channel else "routine",
        "about": [{"reference": f"Task/{row.task_id}"}],
        "sent": now.isoformat(),
        "recipient": [r for r in (task.get("requester"), task.get("owner")) if r],
        "payload": [{"contentString": text}],
        "reasonCode": [{"coding": [{"system": NOTICE_SYSTEM, "code": due.kind}], "text": text}],
    }
    if task.get("for"):
        communication["subject"] = task["for"]
    saved = save_resources(session, [communication], message_id=None, now=now)[0]
    rows = []
    for facility_id in dict.fromkeys(f for f in (row.sender_facility, row.receiver_facility) if f):
        facility = consortium.facility(facility_id)
        for destination in facility.destinations if facility else []:
            if destination.enabled:
                rows.append(
                    {
                        "destination": destination.id,
                        "resource_type": "Communication",
                        "resource_id": notice_id,
                        "version_id": saved.version_id,
                        "patient_key": saved.patient_key,
                        "message_id": None,
                        "reason": f"referral deadline {due.kind}: party {facility_id}",
                    }
                )
    enqueue_many(session, rows, now=now)
    return f"Communication/{notice_id}", len(rows)

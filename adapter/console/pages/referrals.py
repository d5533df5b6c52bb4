"""转诊 Referrals: the worklist (the overdue items of the deadline scheduler first, as ``GET
/referrals/worklist`` lists them; then the referral Tasks, overdue ones first, then open
ones, those waiting longest first) and one referral's timeline (every version of its
Task: status, 业务状态, reason, documents) with the slip (the ServiceRequest). A
facility's client sees the referrals it sends or receives; the patient is masked. The
台账 and the quarterly analysis: referral_ledger.py."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from adapter.api.deps import SessionDep
from adapter.api.facility import own_facility
from adapter.console.masking import masked_patient
from adapter.console.render import page
from adapter.referral.apply import direction_of, facility_of
from adapter.referral.deadlines import label
from adapter.referral.machine import business_of, outputs_of
from adapter.store.models import ReferralOverdue, Resource
from adapter.store.resources import read_history, read_resource

router = APIRouter(include_in_schema=False)
CLOSED = frozenset({"completed", "cancelled", "rejected", "failed", "entered-in-error"})
LIMIT = 500


def _display(concepts: list[dict[str, Any]] | None) -> list[str]:
    out = []
    for concept in concepts or []:
        text = concept.get("text") or next(
            (c.get("display") or c.get("code") for c in concept.get("coding") or []), None
        )
        if text:
            out.append(str(text))
    return out


def _summary(session: Session, request: Request, task: dict[str, Any]) -> dict[str, Any]:
    consortium = request.app.state.consortium
    patient_ref = str((task.get("for") or {}).get("reference") or "")
    patient = (
        read_resource(session, "Patient", patient_ref.split("/", 1)[1])
        if patient_ref.startswith("Patient/")
        else None
    )
    names = {f.id: f.name for f in consortium.facilities}
    sender = facility_of(session, consortium, task.get("requester"))
    receiver = facility_of(session, consortium, task.get("owner"))
    return {
        "id": task.get("id"),
        "status": task.get("status"),
        "business": business_of(task),
        "direction": direction_of(session, task),
        "sender": sender,
        "receiver": receiver,
        "sender_name": names.get(sender or "", sender or ""),
        "receiver_name": names.get(receiver or "", receiver or ""),
        "authored": str(task.get("authoredOn") or "")[:19],
        "updated": str((task.get("meta") or {}).get("lastUpdated") or "")[:19],
        "patient": masked_patient(patient),
        "focus": str((task.get("focus") or {}).get("reference") or ""),
    }


def _mine(request: Request, summary: dict[str, Any]) -> bool:
    facility = own_facility(request)
    return facility is None or facility in (summary["sender"], summary["receiver"])


def overdue_items(request: Request, session: Session) -> list[dict[str, Any]]:
    """The open items of the overdue worklist the caller's facility is party to."""
    facility = own_facility(request)
    zone = ZoneInfo(request.app.state.consortium.timezone or "Asia/Shanghai")
    names = {f.id: f.name for f in request.app.state.consortium.facilities}
    q = (
        select(ReferralOverdue)
        .where(ReferralOverdue.resolved_at.is_(None))
        .order_by(ReferralOverdue.due_at, ReferralOverdue.id)
        .limit(LIMIT)
    )
    if facility is not None:
        q = q.where(
            or_(ReferralOverdue.facility_id == facility, ReferralOverdue.other_facility == facility)
        )
    return [
        {
            "task": o.task_id,
            "kind": o.kind,
            "label": label(o.kind),
            "due": o.due_at.astimezone(zone).strftime("%Y-%m-%d %H:%M"),
            "facility": names.get(o.facility_id or "", o.facility_id or ""),
            "department": o.department or "",
            "other": names.get(o.other_facility or "", o.other_facility or ""),
        }
        for o in session.scalars(q)
    ]


@router.get("/console/referrals", name="console_referrals", response_class=HTMLResponse)
def console_referrals(request: Request, session: SessionDep, show: str = "open") -> HTMLResponse:
    overdue = overdue_items(request, session)
    late = {o["task"] for o in overdue}
    bodies = session.scalars(
        select(Resource.body)
        .where(Resource.resource_type == "Task", Resource.deleted.is_(False))
        .order_by(Resource.last_updated)
        .limit(LIMIT)
    ).all()
    rows = [s for b in bodies if (s := _summary(session, request, b)) and _mine(request, s)]
    if show == "open":
        rows = [r for r in rows if r["status"] not in CLOSED or r["id"] in late]
    elif show == "overdue":
        rows = [r for r in rows if r["id"] in late]
    rows.sort(
        key=lambda r: (r["id"] not in late, r["status"] in CLOSED, r["authored"] or r["updated"])
    )
    return page(
        request,
        "referrals.html",
        active="referrals",
        tab="worklist",
        rows=rows,
        show=show,
        closed=CLOSED,
        overdue=overdue,
        late=late,
    )


def _copies(session: Session, slip: dict[str, Any]) -> list[dict[str, Any]]:
    """The copies of the slip as received (转诊单, 存根, 回执 ...: docs/referrals.md), each
    kept as a DocumentReference the ServiceRequest names in ``supportingInfo``."""
    found = []
    for info in slip.get("supportingInfo") or []:
        reference = str(info.get("reference") or "")
        if not reference.startswith("DocumentReference/"):
            continue
        doc = read_resource(session, "DocumentReference", reference.split("/", 1)[1]) or {}
        attachment = ((doc.get("content") or [{}])[0]).get("attachment") or {}
        found.append(
            {
                "reference": reference,
                "kind": (doc.get("type") or {}).get("text") or "",
                "description": doc.get("description") or "",
                "size": attachment.get("size"),
                "type": attachment.get("contentType") or "",
            }
        )
    return found


@router.get("/console/referrals/{task_id}", name="console_referral", response_class=HTMLResponse)
def console_referral(task_id: str, request: Request, session: SessionDep) -> HTMLResponse:
    task = read_resource(session, "Task", task_id)
    summary = _summary(session, request, task) if task else None
    if task is None or summary is None or not _mine(request, summary):
        return page(request, "not_found.html", status=404, active="referrals", what=task_id)
    _, versions = read_history(session, "Task", task_id)
    timeline = []
    for version in reversed(versions):
        body = version.body or {}
        timeline.append(
            {
                "version": version.version_id,
                "at": str((body.get("meta") or {}).get("lastUpdated") or version.last_updated)[:19],
                "status": body.get("status"),
                "business": business_of(body),
                "reason": _display([body.get("statusReason")] if body.get("statusReason") else []),
                "outputs": outputs_of(body),
            }
        )
    focus = summary["focus"]
    slip = (
        read_resource(session, "ServiceRequest", focus.split("/", 1)[1])
        if focus.startswith("ServiceRequest/")
        else None
    ) or {}
    return page(
        request,
        "referral.html",
        copies=_copies(session, slip),
        active="referrals",
        summary=summary,
        timeline=timeline,
        diagnoses=_display(slip.get("reasonCode")),
        slip_status=slip.get("status"),
        documents=outputs_of(task),
    )

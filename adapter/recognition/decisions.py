"""A doctor's recognition decision (互认 / 不互认) per item of an order: checked against the
catalogue, kept in the ``recognition_decision`` table (for the monthly 互认率) and as a FHIR
``Task`` in the store (read and searched like any resource: ``GET /fhir/Task?patient=``).

One decision per (patient, order, item): recording the same decision again changes nothing
(same row, same Task version); a changed one (the doctor revises it) updates the row and
makes a new Task version, so the history keeps both.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from adapter.consortium import Consortium
from adapter.errors import InvalidRequestError, Issue
from adapter.fhir.dates import format_instant, truncate_to_millis
from adapter.identity import person_of, records_of
from adapter.recognition.catalogue import Catalogue
from adapter.recognition.parameters import ITEM_SYSTEM, MARK_SYSTEM, REASON_SYSTEM
from adapter.recognition.query import (
    RESULT_TYPES,
    WHY,
    StoredResult,
    is_result_of,
    judge,
    zone_of,
)
from adapter.store import lock_resources, resource_state, save_resources
from adapter.store.lengths import over_limit
from adapter.store.models import RecognitionDecision

DECISION_SYSTEM = "https://yigongti-fhir-adapter.github.io/fhir/CodeSystem/recognition-decision"
DECISIONS = {"recognised": "互认", "not-recognised": "不互认"}
_ROW = RecognitionDecision.__table__.c
_TASK_NAMESPACE = uuid.UUID("1f0c9e52-5a43-4c1e-9d0a-6f1c2b7e4d13")  # Task ids of decisions

Decision = Literal["recognised", "not-recognised"]


@dataclass(frozen=True, slots=True)
class DecisionInput:
    patient_id: str
    order_id: str  # the new order: the HIS order number, or "ServiceRequest/<id>"
    item_code: str
    facility_id: str  # the ordering facility
    doctor: str  # the ordering doctor's staff number (工号)
    decision: Decision
    prior: str | None = None  # "Observation/<id>" / "DiagnosticReport/<id>"
    reason_code: str | None = None
    reason_text: str | None = None
    department: str | None = None
    decided_at: datetime | None = None  # None: now (kept as first recorded on a repeat)
    setting: str = "outpatient"  # the care setting: picks the validity window


@dataclass(frozen=True, slots=True)
class Recorded:
    task: dict[str, Any]
    created: bool  # a new decision
    changed: bool  # new or revised (False: the same decision recorded again)


def task_id(patient_id: str, order_id: str, item_code: str) -> str:
    return str(uuid.uuid5(_TASK_NAMESPACE, f"{patient_id}|{order_id}|{item_code}"))


def _bad(message: str, location: str) -> InvalidRequestError:
    return InvalidRequestError(
        message, issues=[Issue("error", "value", message, location=location)]
    )


def check(
    session: Session, catalogue: Catalogue, consortium: Consortium, d: DecisionInput, at: datetime
) -> None:
    """Refuse a decision the catalogue does not allow (400 with the parameter's name); a
    recognised prior result must be recognisable at ``at`` (when the decision is made)."""
    if consortium.facility(d.facility_id) is None:
        raise _bad(f"facility {d.facility_id!r} is not a facility of the consortium", "facility")
    item = catalogue.item(d.item_code)
    if item is None:
        raise _bad(f"item {d.item_code!r} is not in the catalogue {catalogue.edition}", "item")
    if not d.order_id.strip() or not d.doctor.strip():
        raise _bad("order and doctor are required", "order" if not d.order_id.strip() else "doctor")
    for value, column, name in (
        (d.order_id, _ROW.order_id, "order"),
        (d.doctor, _ROW.doctor, "doctor"),
        (d.department, _ROW.department, "department"),
    ):
        problem = over_limit(column, value, name)
        if problem:
            raise _bad(problem, name)
    if d.decision == "recognised":
        if d.prior is None:
            raise _bad("a recognised item names the prior result it recognises", "prior")
        if d.reason_code or d.reason_text:
            raise _bad("a recognised item takes no reason", "reason")
    else:
        reason = catalogue.reason(d.reason_code or "")
        if reason is None:
            codes = ", ".join(r.code for r in catalogue.reasons)
            raise _bad(f"reason {d.reason_code!r} is not one of: {codes}", "reason")
        if reason.needs_text and not (d.reason_text or "").strip():
            raise _bad(f"reason {reason.code!r} needs reason-text (why)", "reason-text")
    if d.prior is not None:
        rtype, _, rid = d.prior.partition("/")
        row = resource_state(session, rtype, rid) if rtype in RESULT_TYPES and rid else None
        if row is None or row.deleted:
            raise _bad(
                f"prior {d.prior!r} is not a stored result (Observation, DiagnosticReport)", "prior"
            )
        records = records_of(session, person_of(session, d.patient_id))
        if row.patient_key not in {f"Patient/{r}" for r in records}:
            raise _bad(f"prior {d.prior!r} is not a result of Patient/{d.patient_id}", "prior")
        if not is_result_of(catalogue, consortium, item, row.body):
            raise _bad(f"prior {d.prior!r} is not a result of item {item.code}", "prior")
        if d.decision == "recognised":
            # the rules allow recognising only what is recognisable when deciding
            result = StoredResult(rtype, rid, row.facility_id, row.body)
            judged = judge(catalogue, item, result, at, d.setting, zone_of(consortium))
            if not judged.recognisable:
                why = judged.reason or ""
                detail = f" ({judged.detail})" if judged.detail else ""
                raise _bad(
                    f"prior {d.prior!r} cannot be recognised: {why}, {WHY.get(why, '')}{detail}",
                    "prior",
                )


def record(
    session: Session,
    catalogue: Catalogue,
    consortium: Consortium,
    d: DecisionInput,
    *,
    now: datetime,
) -> Recorded:
    """Check and store one decision (row and Task) in the caller's transaction."""
    tid = task_id(d.patient_id, d.order_id, d.item_code)
    # the Task's row lock serialises two requests recording the same decision
    locked = lock_resources(session, [("Task", tid)], create_missing=[("Task", tid)], now=now)
    row = session.execute(
        select(RecognitionDecision).where(RecognitionDecision.task_id == tid)
    ).scalar_one_or_none()
    decided_at = truncate_to_millis(d.decided_at or (row.decided_at if row else now))
    check(session, catalogue, consortium, d, decided_at)
    values = {
        "patient_id": d.patient_id,
        "order_id": d.order_id,
        "item_code": d.item_code,
        "facility_id": d.facility_id,
        "department": d.department,
        "doctor": d.doctor,
        "decision": d.decision,
        "reason_code": d.reason_code,
        "reason_text": d.reason_text,
        "prior": d.prior,
        "edition": catalogue.edition,
        "decided_at": decided_at,
    }
    created = row is None
    if row is None:
        row = RecognitionDecision(task_id=tid, recorded_at=now, **values)
        session.add(row)
    else:
        for key, value in values.items():
            setattr(row, key, value)
    session.flush()
    saved = save_resources(
        session, [task(tid, values, catalogue, consortium)], message_id=None, now=now, locked=locked
    )[0]
    return Recorded(saved.body, created, saved.changed)


def task(
    tid: str, v: dict[str, Any], catalogue: Catalogue, consortium: Consortium
) -> dict[str, Any]:
    """The decision as a FHIR R4 Task (docs/decisions/0027-recognition.md)."""
    item = catalogue.item(v["item_code"])
    facility = consortium.facility(v["facility_id"])
    assert item is not None and facility is not None  # checked before
    order = v["order_id"]
    based_on = (
        {"reference": order}
        if order.startswith("ServiceRequest/")
        else {"identifier": {"system": facility.identifier_system("order"), "value": order}}
    )
    body: dict[str, Any] = {
        "resourceType": "Task",
        "id": tid,
        "identifier": [
            {
                "system": facility.identifier_system("recognition-decision"),
                "value": f"{order}|{item.code}",
            }
        ],
        "basedOn": [based_on],
        "status": "completed",
        "businessStatus": {
            "coding": [
                {
                    "system": DECISION_SYSTEM,
                    "code": v["decision"],
                    "display": DECISIONS[v["decision"]],
                }
            ]
        },
        "intent": "order",
        "code": {"coding": [{"system": ITEM_SYSTEM, "code": item.code, "display": item.name}]},
        "for": {"reference": f"Patient/{v['patient_id']}"},
        "authoredOn": format_instant(v["decided_at"]),
        "lastModified": format_instant(v["decided_at"]),
        "requester": {
            "identifier": {"system": facility.identifier_system("staff"), "value": v["doctor"]}
        },
        "owner": {"display": facility.name},
        "input": [
            {"type": {"text": "catalogue-edition"}, "valueString": v["edition"]},
        ],
    }
    if v["prior"]:
        body["focus"] = {"reference": v["prior"]}
    if v["department"]:
        body["input"].append({"type": {"text": "department"}, "valueString": v["department"]})
    if v["decision"] == "recognised":
        body["meta"] = {"tag": [{"system": MARK_SYSTEM, "code": item.mark}]}
    else:
        reason = catalogue.reason(v["reason_code"])
        assert reason is not None
        body["statusReason"] = {
            "coding": [{"system": REASON_SYSTEM, "code": reason.code, "display": reason.display}]
        }
        if v["reason_text"]:
            body["statusReason"]["text"] = v["reason_text"]
        if reason.patient_text:
            body["output"] = [
                {"type": {"text": "patient-explanation"}, "valueString": reason.patient_text}
            ]
    return body

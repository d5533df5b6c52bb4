"""The 转诊台账 kept in step with the referral Tasks (docs/ledger.md): one row per Task,
written in the transaction that changes the Task (adapter/referral/apply.py, the pipeline
step ``note_referral_ledger``). The descriptive columns come from the Task, its
ServiceRequest (the slip), the Patient (masked), the doctors and the Organizations; the
step times are the first time the Task reached each step; the next deadline not yet on
the worklist is the scheduler's index. A step done late resolves its worklist row.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from adapter.consortium import Consortium, Level
from adapter.fhir.dates import parse_range
from adapter.referral.deadlines import owed
from adapter.referral.machine import business_of, outputs_of
from adapter.referral.rules import DIRECTION_SYSTEM, REASON_SYSTEM
from adapter.store import read_resource
from adapter.store.lengths import limit_of
from adapter.store.models import ReferralLedger, ReferralOverdue

ICD10 = "urn:oid:2.16.156.10011.2.3.3.11"
URGENT = frozenset({"urgent", "asap", "stat"})
FLAG_SYSTEM = "https://yigongti-fhir-adapter.github.io/fhir/CodeSystem/referral-flag"
INCOMPLETE_URL = (
    "https://yigongti-fhir-adapter.github.io/fhir/StructureDefinition/incomplete-source"
)
ENDED = frozenset({"rejected", "cancelled", "failed", "entered-in-error", "completed"})
# what a slip must carry (docs/ledger.md): up- and same-level slips, down-slips (回转单)
UP_NEEDS = ("诊断", "转诊原因", "转入机构", "转诊医生", "病史", "治疗经过")
DOWN_NEEDS = ("诊断", "住院号", "主要检查结果", "治疗经过", "下一步治疗方案及康复建议")
FEEDBACK_TYPES = ("Composition/", "DocumentReference/")


_LEDGER = ReferralLedger.__table__.c
_MASK_CHARS = limit_of(_LEDGER.patient_masked) or 64
# display columns filled from resources stored earlier (perhaps before their lengths were
# checked, adapter/pipeline/stored_lengths.py): shortened to fit, the resource keeps them whole
_SHOWN_CHARS = min(
    limit_of(c) or 255
    for c in (
        _LEDGER.sender_department,
        _LEDGER.sender_doctor,
        _LEDGER.receiver_department,
        _LEDGER.receiver_doctor,
    )
)


def _fit(text: str | None) -> str | None:
    return text[:_SHOWN_CHARS] if text else text


def mask_name(name: str | None) -> str | None:
    """张秀英 -> 张*英, 王芳 -> 王*: the ledger never holds a patient's full name."""
    if not name:
        return None
    name = name.strip()
    if len(name) <= 1:
        return "*"
    if len(name) == 2:
        return name[0] + "*"
    # a long name's mask is shortened to its column: the stars tell nothing more
    stars = min(len(name), _MASK_CHARS) - 2
    return name[0] + "*" * stars + name[-1]


def _ref(value: Any) -> str:
    return str((value or {}).get("reference") or "") if isinstance(value, dict) else ""


Reads = dict[str, dict[str, Any] | None]


def read_reference(
    session: Session, reference: str, reads: Reads | None = None
) -> dict[str, Any] | None:
    """The stored resource ``reference`` names; ``reads``: the ones this row's description
    read already (a slip's requester, owner and receiving doctor are often one
    PractitionerRole, Practitioner and Organization: read once, not up to four times).
    Nothing is written while a row is described, so a second read would find the same."""
    if "/" not in reference:
        return None
    if reads is not None and reference in reads:
        return reads[reference]
    kind, rid = reference.split("/", 1)
    body = read_resource(session, kind, rid)
    if reads is not None:
        reads[reference] = body
    return body


def _when(value: str | None, zone: Any) -> datetime | None:
    if not value:
        return None
    try:
        return parse_range(value, zone)[0]
    except ValueError:
        return None


def _direction(request: dict[str, Any], sender: Level | None, receiver: Level | None) -> str:
    for concept in request.get("category") or []:
        for coding in concept.get("coding") or []:
            if coding.get("system") == DIRECTION_SYSTEM and coding.get("code") in ("up", "down"):
                return str(coding["code"])
    if sender is not None and receiver is not None:
        return "up" if receiver > sender else "down" if receiver < sender else "same"
    return "same"


def _flags(request: dict[str, Any]) -> set[str]:
    codes = {
        str(c.get("code"))
        for c in [*(request.get("meta") or {}).get("tag", [])]
        if c.get("system") == FLAG_SYSTEM
    }
    for concept in request.get("category") or []:
        for coding in concept.get("coding") or []:
            if coding.get("system") == FLAG_SYSTEM:
                codes.add(str(coding.get("code")))
    text = " ".join(str(c.get("text") or "") for c in request.get("category") or [])
    if "绿色通道" in text:
        codes.add("green-channel")
    return codes


def shown_name(name: Any) -> str | None:
    """A HumanName as the ledger shows it: its text, else family and given names joined."""
    if not isinstance(name, dict):
        return None
    if name.get("text"):
        return str(name["text"])
    given = name.get("given") if isinstance(name.get("given"), list) else []
    return (str(name.get("family") or "") + "".join(str(g) for g in given)) or None


def _person_name(person: dict[str, Any] | None) -> str | None:
    for name in (person or {}).get("name") or []:
        shown = shown_name(name)
        if shown:
            return shown
    return None


def _age(born: str | None, at: datetime) -> int | None:
    if not born or len(born) < 4 or not born[:4].isdigit():
        return None
    try:
        birth = date.fromisoformat(born) if len(born) == 10 else date(int(born[:4]), 7, 1)
    except ValueError:
        return None
    day = at.date()
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def _notes(request: dict[str, Any]) -> str:
    return "\n".join(str(n.get("text") or "") for n in request.get("note") or [])


def missing_of(request: dict[str, Any], direction: str) -> list[str]:
    """What an incomplete slip lacks (the issue's lists): up- and same-level slips need a
    diagnosis, a reason, the receiving unit, the doctor, the history and the treatment;
    down-slips a diagnosis, the inpatient number, the main results, the treatment and the
    next-step advice. What the mapping already flagged (incomplete-source) counts too."""
    notes = _notes(request)
    codes = [c for r in request.get("reasonCode") or [] for c in r.get("coding") or []]
    has = {
        "诊断": any(c.get("code") for c in codes),
        "转诊原因": bool(request.get("reasonCode")) or "转诊原因" in notes or "转诊目的" in notes,
        "转入机构": any(_ref(p).startswith("Organization/") for p in request.get("performer") or [])
        or bool(request.get("performer")),
        "转诊医生": _ref(request.get("requester")).startswith(
            ("PractitionerRole/", "Practitioner/")
        ),
        "病史": "现病史" in notes or "既往史" in notes,
        "治疗经过": "治疗经过" in notes,
        "住院号": "住院号" in notes
        or any(
            "住院号" in str((i.get("type") or {}).get("text"))
            for i in request.get("identifier") or []
        ),
        "主要检查结果": "检查结果" in notes or "主要结果" in notes,
        "下一步治疗方案及康复建议": "下一步" in notes or "康复建议" in notes or "建议" in notes,
    }
    needs = DOWN_NEEDS if direction == "down" else UP_NEEDS
    missing = [need for need in needs if not has[need]]
    for extension in request.get("extension") or []:
        if extension.get("url") == INCOMPLETE_URL and extension.get("valueString"):
            flagged = f"来源缺项: {extension['valueString']}"
            if flagged not in missing:
                missing.append(flagged)
    return missing


def _facility(
    session: Session, consortium: Consortium, reference: Any, reads: Reads | None = None
) -> tuple[str | None, str | None, str | None]:
    """(member facility id or the Organization's name, department, doctor) of a requester
    or owner: an Organization, or a PractitionerRole with its specialty and Practitioner."""
    from adapter.referral.apply import facility_of

    ref = _ref(reference)
    body = read_reference(session, ref, reads) or {}
    department = doctor = None
    organization = body
    if body.get("resourceType") == "PractitionerRole":
        department = next(
            (s.get("text") for s in body.get("specialty") or [] if s.get("text")), None
        )
        doctor = _person_name(read_reference(session, _ref(body.get("practitioner")), reads))
        organization = read_reference(session, _ref(body.get("organization")), reads) or {}
    member = facility_of(session, consortium, reference, reads)
    name = member or (str(organization.get("name"))[:64] if organization.get("name") else None)
    return name, _fit(department), _fit(doctor)


def performer_department(display: str) -> str | None:
    """The department a slip names beside the receiving unit: ``青山县人民医院 内分泌科``."""
    display = display.strip()
    return display.rsplit(" ", 1)[1] if " " in display else None


def _receiver_department(request: dict[str, Any]) -> str | None:
    for performer in request.get("performer") or []:
        department = performer_department(str(performer.get("display") or ""))
        if department:
            return department
    return None


def _insurance(session: Session, request: dict[str, Any], reads: Reads | None = None) -> str | None:
    """The insurance type: the ``Coverage.type`` a slip's ``insurance`` names, else the
    reference's display (the slip mappings write the 医疗付费方式 name there)."""
    for item in request.get("insurance") or []:
        coverage = read_reference(session, _ref(item), reads) or {}
        kind = coverage.get("type") or {}
        text = kind.get("text") or next(
            (c.get("display") or c.get("code") for c in kind.get("coding") or []), None
        )
        text = text or (item.get("display") if isinstance(item, dict) else None)
        if text:
            return str(text)[:64]
    return None


def _receiving_doctor(
    session: Session, request: dict[str, Any], reads: Reads | None = None
) -> str | None:
    """The doctor a slip sends the patient to (接诊医生): a Practitioner (or a
    PractitionerRole's) among the ServiceRequest's performers."""
    for performer in request.get("performer") or []:
        ref = _ref(performer)
        if ref.startswith("Practitioner/"):
            name = _person_name(read_reference(session, ref, reads))
        elif ref.startswith("PractitionerRole/"):
            role = read_reference(session, ref, reads) or {}
            name = _person_name(read_reference(session, _ref(role.get("practitioner")), reads))
        else:
            continue
        if name:
            return name[:255]
    return None


def describe(
    session: Session, consortium: Consortium, task: dict[str, Any], zone: Any, at: datetime
) -> dict[str, Any]:
    """The descriptive columns of a Task's row (all but the step times). The slip's date
    is its ``authoredOn``; without one, when the Task was stored (``at``)."""
    reads: Reads = {}  # each resource read once for the row (bench_discharge --statements)
    request = read_reference(session, _ref(task.get("focus")), reads) or {}
    sender, sender_department, sender_doctor = _facility(
        session, consortium, task.get("requester") or request.get("requester"), reads
    )
    receiver, receiver_department, receiver_doctor = _facility(
        session, consortium, task.get("owner"), reads
    )
    levels = {f.id: f.level for f in consortium.facilities}
    direction = _direction(request, levels.get(sender or ""), levels.get(receiver or ""))
    patient = read_reference(session, _ref(task.get("for") or request.get("subject")), reads) or {}
    created = _when(request.get("authoredOn") or task.get("authoredOn"), zone)
    created = created or _when(str((task.get("meta") or {}).get("lastUpdated") or ""), zone) or at
    codes = [
        c
        for r in request.get("reasonCode") or []
        for c in r.get("coding") or []
        if c.get("system") == ICD10 or c.get("code")
    ]
    diagnosis = next((c for c in codes if c.get("system") == ICD10), codes[0] if codes else {})
    reasons = [str(r.get("text")) for r in request.get("reasonCode") or [] if r.get("text")]
    flags = _flags(request)
    county = consortium.referrals.county_facilities
    in_county = receiver in levels and (county is None or receiver in county)
    priority = str(request.get("priority") or task.get("priority") or "routine")
    transfer = _when(request.get("occurrenceDateTime"), zone)
    return {
        "request_id": _ref(task.get("focus")).split("/", 1)[-1][:64],
        "slip_number": (request.get("requisition") or {}).get("value")
        or next((i.get("value") for i in task.get("identifier") or []), None),
        "direction": direction,
        "emergency": priority in URGENT,
        "green_channel": "green-channel" in flags or priority == "stat",
        "backfilled": "backfilled" in flags or (transfer is not None and created > transfer),
        "patient_id": str(patient.get("id") or "")[:64] or None,
        "patient_masked": mask_name(_person_name(patient)),
        "sex": patient.get("gender"),
        "age": _age(patient.get("birthDate"), created),
        "insurance": _insurance(session, request, reads),
        "diagnosis_code": (str(diagnosis.get("code"))[:32] if diagnosis.get("code") else None),
        "diagnosis_text": (str(diagnosis.get("display") or "")[:255] or None),
        "reason": "；".join(reasons) or None,
        "sender_facility": sender,
        "sender_department": sender_department,
        "sender_doctor": sender_doctor,
        "receiver_facility": receiver,
        "receiver_department": receiver_department or _fit(_receiver_department(request)),
        "receiver_doctor": receiver_doctor or _receiving_doctor(session, request, reads),
        "out_of_county": not in_county,
        "missing": missing_of(request, direction),
        "created_at": created,
    }


def _reason(task: dict[str, Any]) -> str | None:
    for coding in (task.get("statusReason") or {}).get("coding") or []:
        if coding.get("system") == REASON_SYSTEM:
            return str(coding.get("code"))
    return None


def _steps(row: ReferralLedger, task: dict[str, Any], at: datetime) -> None:
    """The first time each step was reached (a jump fills the steps it passed)."""
    status, business = row.status, row.business_status or ""
    outputs = outputs_of(task)
    moved_on = status in ("accepted", "in-progress", "on-hold", "completed", "failed")
    arrived = business in ("arrived", "admitted", "discharged", "followed-up") or status in (
        "in-progress",
        "on-hold",
    )
    arrived = arrived or any(o.startswith("Encounter/") for o in outputs)
    if status not in ("draft", "requested") and row.received_at is None:
        row.received_at = at
    if moved_on and row.accepted_at is None:
        row.accepted_at = at
    if status == "rejected" and row.rejected_at is None:
        row.rejected_at = at
    if arrived and row.arrived_at is None:
        row.arrived_at = at
    if business == "admitted" and row.admitted_at is None:
        row.admitted_at = at
    if business in ("discharged", "followed-up") and row.discharged_at is None:
        row.discharged_at = at
    feedback = next((o for o in outputs if o.startswith(FEEDBACK_TYPES)), None)
    if feedback and row.feedback_at is None:
        row.feedback_at, row.feedback_document = at, feedback
    if business == "followed-up" and row.follow_ups < 1:
        row.follow_ups = 1
        row.followed_up_at = row.followed_up_at or at
    if status in ENDED and row.closed_at is None:
        row.closed_at = at


def note_task(
    session: Session,
    consortium: Consortium,
    task: dict[str, Any],
    *,
    at: datetime,
    zone: Any = None,
    step_at: datetime | None = None,
) -> ReferralLedger | None:
    """Write the row of a referral Task (one whose focus is a ServiceRequest) after it
    changed at ``at``; None for another Task (a recognition decision ...). ``step_at``:
    when the step happened, when a message says (an admission's or a discharge's time)."""
    if not _ref(task.get("focus")).startswith("ServiceRequest/") or not task.get("id"):
        return None
    from zoneinfo import ZoneInfo

    zone = zone or ZoneInfo(consortium.timezone or "Asia/Shanghai")
    described = describe(session, consortium, task, zone, at)
    row = session.get(ReferralLedger, str(task["id"]))
    listed = None
    if row is None:
        # the worklist read before the new row is added: its autoflush would write the row
        # without its next deadline, then an UPDATE (one statement more a new referral)
        listed = _listed(session, str(task["id"]))
        row = ReferralLedger(task_id=str(task["id"]), follow_ups=0, updated_at=at)
        session.add(row)
    for key, value in described.items():
        setattr(row, key, value)
    row.status = str(task.get("status"))
    row.business_status = business_of(task) or (
        "requested" if row.status in ("draft", "requested") else None
    )
    row.rejection_reason = _reason(task)
    # an event's own time stands (a slip written after the patient arrived: 补录); the
    # adapter's own times are never before the slip
    _steps(row, task, step_at if step_at is not None else max(at, row.created_at))
    if not row.backfilled and row.arrived_at is not None and row.created_at > row.arrived_at:
        row.backfilled = True
    row.updated_at = at
    schedule(session, consortium, row, at, listed)
    return row


def record_follow_up(
    session: Session,
    consortium: Consortium,
    row: ReferralLedger,
    *,
    at: datetime,
    record: str | None,
) -> ReferralLedger:
    """A follow-up of the referred patient (the sender's after an up-referral, the primary
    facility's after a down-referral): counted, the first one's time kept."""
    row.follow_ups += 1
    row.followed_up_at = row.followed_up_at or at
    row.follow_up_record = record or row.follow_up_record
    row.updated_at = at
    schedule(session, consortium, row, at)
    return row


def _listed(session: Session, task_id: str) -> dict[str, ReferralOverdue]:
    """The Task's rows on the overdue worklist, by kind."""
    return {
        item.kind: item
        for item in session.scalars(
            select(ReferralOverdue).where(ReferralOverdue.task_id == task_id)
        )
    }


def schedule(
    session: Session,
    consortium: Consortium,
    row: ReferralLedger,
    now: datetime,
    listed: dict[str, ReferralOverdue] | None = None,
) -> None:
    """The next deadline not yet on the worklist (the scheduler's index); the worklist rows
    of steps now done (or no longer owed) are resolved, but for the expiry of a Task the
    adapter cancelled as 已过期: the referral was lost, it stays on the worklist.
    ``listed``: the Task's worklist rows when the caller read them (``_listed``)."""
    due = owed(row, consortium.referrals.deadlines)
    kinds = {d.kind for d in due}
    if listed is None:
        listed = _listed(session, row.task_id)
    for kind, item in listed.items():
        if kind == "expire" and row.business_status == "expired":
            continue  # the referral was lost: it stays on the worklist
        if kind not in kinds and item.resolved_at is None:
            item.resolved_at = now
    waiting = [d for d in due if d.kind not in listed]
    row.next_due_at = waiting[0].at if waiting else None
    row.next_due_kind = waiting[0].kind if waiting else None

"""Applying a change to a referral Task through the store, in the caller's transaction:
lock the Task, check the version the change was made against, run the state machine,
save the new version (the same change twice makes one version: unchanged content keeps
its version), move the ServiceRequest when every Task of it is done, and queue the new
versions for delivery like any change (static routes and routing by care: both parties).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from adapter import audit
from adapter.consortium import Consortium
from adapter.errors import AdapterError, ConflictError, Issue, MessageError, NotFoundError
from adapter.fhir.search_query import parse_search
from adapter.identity import person_of
from adapter.referral import ledger
from adapter.referral.machine import (
    ADAPTER,
    RECEIVER,
    SENDER,
    Change,
    Outcome,
    Refusal,
    transition,
)
from adapter.referral.machine import request_status as next_request_status
from adapter.referral.rules import DIRECTION_SYSTEM
from adapter.routing.care import member_of
from adapter.store import care, enqueue_many, lock_resources, read_resource, save_resources, search
from adapter.store.resources import Saved
from adapter.version_routing import outbox_rows_for_versions


class RefusedError(AdapterError):
    """The state machine refuses the change; the OperationOutcome names the rule."""

    http_status = 409
    issue_code = "business-rule"

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(
            f"refused by rule {refusal.rule}: {refusal.message}",
            issues=[
                Issue(
                    "error",
                    self.issue_code,
                    f"refused by rule {refusal.rule}: {refusal.message}",
                    location=refusal.rule,
                    expression="Task.status",
                )
            ],
        )
        self.rule = refusal.rule
        if refusal.rule == "party-not-involved":
            self.http_status = 403
            self.issues[0].code = "forbidden"


class StaleVersionError(ConflictError):
    """If-Match names a version that is no longer the current one."""

    http_status = 412


@dataclass(slots=True)
class Applied:
    task: dict[str, Any]
    version: int
    changed: bool
    party: str
    notes: tuple[str, ...] = ()
    outbox: list[dict[str, Any]] = field(default_factory=list)
    request: str | None = None  # the ServiceRequest's new status, when it moved
    saved: list[Saved] = field(default_factory=list)  # the new versions (Task, ServiceRequest)


def facility_of(
    session: Session,
    consortium: Consortium,
    reference: Any,
    reads: dict[str, dict[str, Any] | None] | None = None,
) -> str | None:
    """The member facility of a stored Organization (or PractitionerRole's organization).
    ``reads``: resources already read (by reference) while nothing was written, used and
    completed (adapter.referral.ledger.describe)."""
    ref = str((reference or {}).get("reference") or "") if isinstance(reference, dict) else ""
    found: dict[str, dict[str, Any]] = {}
    for _ in range(2):  # PractitionerRole -> Organization
        if "/" not in ref:
            return None
        kind = ref.split("/", 1)[0]
        body = ledger.read_reference(session, ref, reads)
        if body is None:
            return None
        found[ref] = body
        if kind != "PractitionerRole":
            break
        ref = str((body.get("organization") or {}).get("reference") or "")
    start = reference if isinstance(reference, dict) else None
    return member_of(consortium, start, found)


def direction_of(session: Session, task: dict[str, Any]) -> str | None:
    """up or down: the referral-direction code of the Task's ServiceRequest, if any."""
    focus = str((task.get("focus") or {}).get("reference") or "")
    if not focus.startswith("ServiceRequest/"):
        return None
    request = read_resource(session, "ServiceRequest", focus.split("/", 1)[1]) or {}
    return next(
        (
            c.get("code")
            for concept in request.get("category") or []
            for c in concept.get("coding") or []
            if c.get("system") == DIRECTION_SYSTEM
        ),
        None,
    )


def party_of(
    session: Session, consortium: Consortium, task: dict[str, Any], facility: str | None
) -> str | None:
    """sender, receiver or None for the facility asking (the adapter itself: ``adapter``)."""
    if facility == ADAPTER:
        return ADAPTER
    if facility is None:
        return None
    if facility_of(session, consortium, task.get("requester")) == facility:
        return SENDER
    if facility_of(session, consortium, task.get("owner")) == facility:
        return RECEIVER
    return None


def apply_change(
    session: Session,
    consortium: Consortium,
    task_id: str,
    change: Change,
    facility: str,
    *,
    now: datetime,
    expected_version: int | None = None,
    message_id: str | None = None,
    then: Sequence[Change] = (),
    queue: bool = True,
    step_at: datetime | None = None,
) -> Applied:
    """Change the Task ``task_id`` as ``facility`` (a member facility id, or ``adapter``).
    ``expected_version``: the version the change was made against (If-Match); a stale one
    is refused unless the change is already made (then the current version is answered:
    the same change twice, one new version). ``then``: more changes after ``change``, one
    new version for all (an arrival by message is received, then in progress).
    ``queue=False`` leaves delivery to the caller (the pipeline routes ``Applied.saved``
    with its message). ``step_at``: when the step happened, if not ``now`` (an ADT's
    admission or discharge time), for the referral ledger."""
    locked = lock_resources(session, [("Task", task_id)], now=now)
    task = locked.body("Task", task_id)
    if task is None:
        raise NotFoundError(f"Task/{task_id} is not known", location="id")
    version = int(task["meta"]["versionId"])
    party = party_of(session, consortium, task, facility)
    direction = direction_of(session, task)
    result = transition(task, change, party, direction=direction)
    for more in then:
        if isinstance(result, Refusal):
            break
        following = transition(result.task, more, party, direction=direction)
        if isinstance(following, Outcome):
            following = Outcome(
                following.task, following.changed or result.changed, result.notes + following.notes
            )
        result = following
    stale = expected_version is not None and expected_version != version
    if stale and (isinstance(result, Refusal) or result.changed):
        raise StaleVersionError(
            f"Task/{task_id} is at version {version}, not {expected_version}: read it "
            "again and decide on the current state",
            location="If-Match",
        )
    if isinstance(result, Refusal):
        raise RefusedError(result)
    if not result.changed:
        return Applied(task, version, False, party or "", result.notes)
    return _store(
        session,
        consortium,
        result.task,
        facility,
        party or "",
        now,
        message_id,
        result.notes,
        locked,
        queue=queue,
        step_at=step_at,
    )


def create_task(
    session: Session,
    consortium: Consortium,
    task: dict[str, Any],
    facility: str,
    *,
    now: datetime,
    message_id: str | None = None,
) -> Applied:
    """A new referral Task made by its sender (another receiver of a referral): focus a
    stored ServiceRequest, status draft or requested."""
    task_id = str(task["id"])
    locked = lock_resources(
        session, [("Task", task_id)], create_missing=[("Task", task_id)], now=now
    )
    if locked.body("Task", task_id) is not None:
        raise ConflictError(f"Task/{task_id} exists already", location="id")
    focus = str((task.get("focus") or {}).get("reference") or "")
    request = (
        read_resource(session, "ServiceRequest", focus.split("/", 1)[1])
        if focus.startswith("ServiceRequest/")
        else None
    )
    if request is None:
        raise NotFoundError(
            "Task.focus must name a stored referral ServiceRequest", location="Task.focus"
        )
    if task.get("for") != request.get("subject"):
        raise MessageError("Task.for must be the referral's patient", location="Task.for")
    # the sender of the referral (its ServiceRequest's requester) makes Tasks for it
    sender = facility_of(session, consortium, request.get("requester"))
    party = (
        SENDER
        if sender == facility and party_of(session, consortium, task, facility) == SENDER
        else None
    )
    base = {k: v for k, v in task.items() if k not in ("status", "businessStatus", "meta")}
    result = transition(None, Change(status=str(task.get("status") or "requested"), at=now), party)
    if isinstance(result, Refusal):
        raise RefusedError(result)
    return _store(
        session,
        consortium,
        {**base, **result.task},
        facility,
        party or "",
        now,
        message_id,
        result.notes,
        locked,
    )


def _store(
    session: Session,
    consortium: Consortium,
    task: dict[str, Any],
    facility: str,
    party: str,
    now: datetime,
    message_id: str | None,
    notes: tuple[str, ...],
    locked: Any,
    *,
    queue: bool = True,
    step_at: datetime | None = None,
) -> Applied:
    saved = save_resources(session, [task], message_id=message_id, now=now, locked=locked)
    moved = _move_request(session, task, now, message_id)
    made = [s for s in [*saved, *moved] if s.changed]
    _note_care(session, consortium, task, now, closed=bool(moved) and _closed(moved[0].body))
    ledger.note_task(session, consortium, saved[0].body, at=now, step_at=step_at)
    rows = (
        outbox_rows_for_versions(
            session,
            consortium,
            made,
            facility,
            now,
            message_id=message_id,
            person_of_version=lambda item: (
                _person(session, item.body) if item.resource_type == "Task" else None
            ),
        )
        if queue
        else []
    )
    enqueue_many(session, rows, now=now)
    return Applied(
        saved[0].body,
        saved[0].version_id,
        saved[0].changed,
        party,
        notes,
        rows,
        moved[0].body.get("status") if moved else None,
        made,
    )


def tasks_of(session: Session, focus: str) -> list[dict[str, Any]]:
    """The stored Tasks of a referral ServiceRequest (``ServiceRequest/<id>``)."""
    request = parse_search("Task", [("focus", focus)])
    _, found = search(session, "Task", request.criteria, count=1000)
    return found


def _move_request(
    session: Session, task: dict[str, Any], now: datetime, message_id: str | None
) -> list[Saved]:
    """The ServiceRequest once no Task of it is open any more (machine.request_status)."""
    focus = str((task.get("focus") or {}).get("reference") or "")
    if not focus.startswith("ServiceRequest/"):
        return []
    request = read_resource(session, "ServiceRequest", focus.split("/", 1)[1])
    if request is None:
        return []
    others = [t for t in tasks_of(session, focus) if t.get("id") != task.get("id")]
    status = next_request_status(
        request.get("status"), [task["status"], *(t.get("status") for t in others)]
    )
    if status is None:
        return []
    return save_resources(session, [{**request, "status": status}], message_id=message_id, now=now)


def _closed(request: dict[str, Any]) -> bool:
    return request.get("status") in ("completed", "revoked", "entered-in-error")


def _person(session: Session, task: dict[str, Any]) -> str | None:
    ref = str((task.get("for") or {}).get("reference") or "")
    return person_of(session, ref.split("/", 1)[1]) if ref.startswith("Patient/") else None


def _note_care(
    session: Session, consortium: Consortium, task: dict[str, Any], now: datetime, *, closed: bool
) -> None:
    """Both parties of the Task care for the person while the referral is open (a Task
    made for a second receiver makes it a party); the loop's close ends their rows."""
    person = _person(session, task)
    focus = str((task.get("focus") or {}).get("reference") or "")
    if person is None or not focus:
        return
    after = timedelta(days=consortium.care.windows.referral_after_close_days)
    detail = f"Task/{task['id']} {task['status']}"
    if closed:
        care.close_referral(session, focus, at=now, end=now + after, detail=detail)
        return
    for reference in (task.get("requester"), task.get("owner")):
        member = facility_of(session, consortium, reference)
        if member is not None:
            care.note_referral(session, person, member, focus, at=now, end=None, detail=detail)


def audit_change(
    session: Session,
    task_id: str,
    facility: str,
    *,
    at: datetime,
    applied: Applied | None = None,
    refused: str | None = None,
    interaction: str = "update",
) -> None:
    """A referral change (or its refusal, naming the rule) in the audit log: references and
    codes only. Record a refusal in a transaction of its own (the refused one rolls back)."""
    task = applied.task if applied else {}
    audit_referral(
        session,
        task_id,
        facility,
        at=at,
        refused=refused,
        interaction=interaction,
        detail={
            "status": task.get("status"),
            "changed": (1 if applied.changed else 0) if applied else None,
        },
        entities=(f"Task/{task_id}/_history/{applied.version}",) if applied else (),
        patient=str((task.get("for") or {}).get("reference") or ""),
    )


def audit_referral(
    session: Session,
    task_id: str,
    facility: str,
    *,
    at: datetime,
    refused: str | None,
    interaction: str,
    detail: dict[str, str | int | None],
    entities: tuple[str, ...] = (),
    patient: str = "",
) -> None:
    """One ``referral.changed`` / ``referral.refused`` record: the party, the Task, the
    rule refused (if any) and ``detail`` (codes and counts, never clinical text)."""
    audit.record(
        audit.AuditEvent(
            action="referral.refused" if refused else "referral.changed",
            outcome="failure" if refused else "success",
            actor=f"facility:{facility}",
            subject=f"Task/{task_id}",
            correlation_id=None,
            at=at,
            detail={"interaction": interaction, "rule": refused, **detail},
            facility=facility if facility != ADAPTER else None,
            entities=entities,
            patients=(patient,) if patient.startswith("Patient/") else (),
        ),
        session=session,
    )

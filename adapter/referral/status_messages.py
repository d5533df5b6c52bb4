"""Status messages that move referral Tasks (docs/referral-loop.md, "Messages that move a
Task"): a pipeline step (after ``save``, before ``advance_referrals``).

HL7 v2 (v2.5.1 chapter 11), the referral named by RF1-6 (its Task is the one the message's
translation made: the same slip, the same Task id):

    RRI^I12 / I13 / I15 from the receiver    RF1-1 (HL7 table 0283) or MSA-1:
        A accepted (MSA AA / CA)               accepted / 已同意
        P pending                              received / 已接收
        R rejected (MSA AR / CR)               rejected / 已拒绝, reason RF1-10 as text, code other
        E expired                              cancelled / 已过期 is the adapter's: left as it is
    REF^I14 (cancel) from the sender          cancelled / 已取消
    REF^I13 (modify), REF^I15 (status query)  no change of the Task
    RRI^I14 (the answer to a cancellation)    no change

And any referral message whose translated Task carries a status or businessStatus other
than the slip's ``requested`` (a vendor export with a status column mapped onto
``Task.status`` / ``Task.businessStatus``): that change, asked by the message's facility.

Every change goes through ``apply_change`` with the message's facility as the asking party:
a message can do nothing its facility could not do by API, the same status twice changes
nothing, and a refusal (a status after completion, one out of order) is an information
issue of the message naming the rule.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from adapter.errors import AdapterError, Issue
from adapter.hl7v2.parser import parse_hl7v2
from adapter.referral.apply import RefusedError, apply_change
from adapter.referral.machine import Change, business_of
from adapter.store import read_resource

if TYPE_CHECKING:
    from adapter.pipeline.steps import Work

# HL7 table 0283 (referral status) and MSA-1 (acknowledgment code) -> Task change
RF1_STATUS = {"A": "accepted", "P": "received", "R": "rejected"}
MSA_STATUS = {"AA": "accepted", "CA": "accepted", "AR": "rejected", "CR": "rejected"}
ANSWERS = frozenset({"RRI^I12", "RRI^I13", "RRI^I15", "REF^I15"})


def change_of(message_type: str, msa: str, rf1: str, reason: str) -> Change | None:
    """The Task change an HL7 v2 referral message asks for, or None."""
    kind = "^".join(message_type.split("^")[:2])
    if kind == "REF^I14":
        return Change("cancelled", "cancelled")
    if kind not in ANSWERS or (kind == "REF^I15" and not rf1):
        return None
    status = RF1_STATUS.get(rf1) if rf1 else MSA_STATUS.get(msa)
    if status is None:
        return None
    if status == "rejected":
        return Change("rejected", "rejected", reason="other", reason_text=reason or None)
    return Change(status)


def _referral_tasks(work: Work) -> list[dict[str, Any]]:
    return [
        r
        for r in work.resources
        if r.get("resourceType") == "Task"
        and str((r.get("focus") or {}).get("reference") or "").startswith("ServiceRequest/")
    ]


def read_referral_status(work: Work) -> None:
    """Before the merge (which keeps the stored Task, keep-first): the status and
    businessStatus the source wrote on each referral Task."""
    for task in _referral_tasks(work):
        work.written_status[str(task["id"])] = (task.get("status"), business_of(task))


def apply_referral_status(work: Work) -> None:
    tasks = _referral_tasks(work)
    if not tasks:
        return
    change = _hl7_change(work)
    for translated in tasks:
        asked = change or _written_change(work, str(translated["id"]))
        if asked is not None:
            _apply(work, str(translated["id"]), asked)


def _hl7_change(work: Work) -> Change | None:
    if work.message.detected_format != "hl7v2":
        return None
    try:
        message = parse_hl7v2(work.message.raw)
    except AdapterError:  # translated already; a re-read that fails moves nothing
        return None
    rf1 = message.first("RF1")
    msa = message.first("MSA")
    return change_of(
        message.message_type(),
        msa.get(1) if msa else "",
        rf1.get(1) if rf1 else "",
        (rf1.get(10, comp=2) or rf1.get(10)) if rf1 else "",
    )


def _written_change(work: Work, task_id: str) -> Change | None:
    """A status the source wrote on the Task (a vendor export's status column)."""
    status, business = work.written_status.get(task_id, (None, None))
    if status in (None, "requested", "draft") and business in (None, "requested"):
        return None
    stored = read_resource(work.session, "Task", task_id) or {}
    if stored.get("status") == status and business in (None, business_of(stored)):
        return None
    return Change(str(status), business)


def _apply(work: Work, task_id: str, change: Change) -> None:
    where = f"Task/{task_id}"
    try:
        applied = apply_change(
            work.session,
            work.consortium,
            task_id,
            Change(
                change.status,
                change.business,
                change.reason,
                change.reason_text,
                change.output,
                at=work.moment,
            ),
            work.facility.id,
            now=work.moment,
            message_id=work.message.id,
            queue=False,
        )
    except RefusedError as refused:
        work.issues.append(
            Issue(
                "information",
                "informational",
                f"referral {where} left as it is ({change.status} by the message): refused by "
                f"rule {refused.rule}",
                location=where,
                expression="Task.status",
            )
        )
        return
    except AdapterError as error:  # not found: the Task was not stored
        work.issues.append(Issue("information", "informational", f"{where}: {error.message}"))
        return
    if applied.changed:
        work.saved.extend(s for s in applied.saved if s.changed)
        work.issues.append(
            Issue(
                "information",
                "informational",
                f"referral {where} moved to {applied.task['status']} by the message",
                location=where,
            )
        )

"""The referral state machine as a pure function: a Task, a change and the party asking for
it give either the Task's next content or a refusal naming the rule of
adapter/data/referral-states.yaml that forbids it. Nothing here reads or writes the store
(adapter/referral/apply.py does).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from adapter.referral.rules import BUSINESS_SYSTEM, NEW, REASON_SYSTEM, Table, table

SENDER, RECEIVER, ADAPTER = "sender", "receiver", "adapter"


@dataclass(frozen=True, slots=True)
class Change:
    """What a party asks of a Task. ``None`` leaves that part as it is; ``output`` are
    references ("Encounter/abc") added to Task.output."""

    status: str | None = None
    business: str | None = None
    reason: str | None = None  # a referral-rejection-reason code
    reason_text: str | None = None
    output: tuple[str, ...] = ()
    at: datetime | None = None  # Task.lastModified of the new content


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a change is not made: ``rule`` names the table's rule (docs/referral-loop.md)."""

    rule: str
    message: str


@dataclass(frozen=True, slots=True)
class Outcome:
    task: dict[str, Any]
    changed: bool
    notes: tuple[str, ...] = field(default=())  # e.g. closed without feedback


def business_of(task: dict[str, Any] | None) -> str | None:
    for coding in ((task or {}).get("businessStatus") or {}).get("coding") or []:
        if coding.get("system") == BUSINESS_SYSTEM:
            return coding.get("code")
    return None


def outputs_of(task: dict[str, Any] | None) -> list[str]:
    return [
        str((o.get("valueReference") or {}).get("reference"))
        for o in (task or {}).get("output") or []
        if (o.get("valueReference") or {}).get("reference")
    ]


def has_evidence(references: Iterable[str], rules: Table | None = None) -> bool:
    """Every evidence group of the table is named by one reference (Encounter, and a
    Composition or DocumentReference)."""
    kinds = {r.split("/", 1)[0] for r in references}
    return all(kinds & set(group) for group in (rules or table()).evidence)


def transition(
    task: dict[str, Any] | None,
    change: Change,
    party: str | None,
    rules: Table | None = None,
    *,
    direction: str | None = None,
) -> Outcome | Refusal:
    """The Task after ``change`` by ``party`` (sender, receiver, adapter; None: neither), or
    the refusal. ``task`` None is a Task not made yet (the sender creates it).
    ``direction``: the referral's (up, down; its ServiceRequest's category)."""
    rules = rules or table()
    if party not in (SENDER, RECEIVER, ADAPTER):
        return Refusal(
            "party-not-involved",
            "only the sending facility (Task.requester) or the receiving facility (Task.owner) "
            "may change a referral Task",
        )
    current = str((task or {}).get("status") or NEW) if task is not None else NEW
    target = change.status or (current if current != NEW else "")
    if not target:
        return Refusal("status-required", "a new referral Task needs a status")
    before = business_of(task)
    outputs = outputs_of(task)
    added = [r for r in dict.fromkeys(change.output) if r not in outputs]
    if added and party == SENDER:
        return Refusal("output-by-receiver", "only the receiver adds Task.output (its feedback)")
    if target not in rules.status:
        return Refusal("unknown-status", f"Task.status {target!r} is not used for referrals")
    if change.business is not None and change.business not in rules.business:
        return Refusal(
            "unknown-business-status",
            f"businessStatus {change.business!r} is not in {BUSINESS_SYSTEM}",
        )
    code = change.business or _kept_business(before, target, rules)
    notes: list[str] = []
    if target == "completed" and code in ("closed", None):
        if not has_evidence(outputs + added, rules):
            code = "closed-without-feedback"
            notes.append(
                "closed without feedback: Task.output names no receiver's Encounter with a "
                "discharge summary or consult note"
            )
    elif code == "closed" and not has_evidence(outputs + added, rules):
        code = "closed-without-feedback"
    new = _content(task, target, code, change, added, rules)
    rule = rules.status[target]
    if party != ADAPTER and rule.by not in (party, "either"):
        return Refusal(
            f"{target}-by-{rule.by}",
            f"Task.status {target} is set by the {rule.by}, not the {party}",
        )
    if task is not None and _same(task, new):
        return Outcome(task, False)  # the same change again: nothing new
    if current in rules.final:
        return Refusal(
            f"final-{current}",
            f"the Task is {current}: nothing changes after {' or '.join(sorted(rules.final))}",
        )
    if target != current or current == NEW:
        if current not in rule.sources:
            return Refusal(
                f"{target}-from",
                f"Task.status {target} follows {', '.join(rule.sources)}, not {current}",
            )
    elif current not in rule.sources and code == before and not added:
        return Refusal(f"{target}-again", f"the Task is {current} already")
    if code is not None:
        refused = _check_business(code, target, current, before, party, change, rules)
        if refused is not None:
            return refused
    needed = rules.business.get(rules.down_completed_after or "")
    if direction == "down" and target == "completed" and current != "completed" and needed:
        reached = max(
            (rules.business[c].rank for c in (before, change.business) if c in rules.business),
            default=-1,
        )
        if reached < needed.rank:
            return Refusal(
                "down-referral-follow-up",
                f"a down-referral is completed only after the first follow-up at the primary "
                f"facility is recorded ({needed.code}, {needed.display})",
            )
    return Outcome(new, True, tuple(notes))


def _kept_business(before: str | None, target: str, rules: Table) -> str | None:
    """A status change without a businessStatus keeps the one there when it goes with the
    new status (on-hold and back keeps 已入院), else takes the table's default for it; a
    completion is 已关闭 unless the change names another."""
    item = rules.business.get(before or "")
    if item is not None and target in item.statuses and target != "completed":
        return before
    return rules.default_business.get(target)


def business_status(code: str, rules: Table | None = None) -> dict[str, Any]:
    """Task.businessStatus of a code of the adapter's CodeSystem."""
    display = (rules or table()).business[code].display
    return {
        "coding": [{"system": BUSINESS_SYSTEM, "code": code, "display": display}],
        "text": display,
    }


def _check_business(
    code: str,
    target: str,
    current: str,
    before: str | None,
    party: str,
    change: Change,
    rules: Table,
) -> Refusal | None:
    item = rules.business.get(code)
    if item is None:
        return Refusal(
            "unknown-business-status", f"businessStatus {code!r} is not in {BUSINESS_SYSTEM}"
        )
    if target not in item.statuses:
        return Refusal(
            "business-status-of-status",
            f"businessStatus {code} ({item.display}) goes with Task.status "
            f"{', '.join(item.statuses)}, not {target}",
        )
    if party != ADAPTER and item.by not in (party, "either") and change.business is not None:
        return Refusal(
            f"business-{code}-by-{item.by}",
            f"businessStatus {code} ({item.display}) is set by the {item.by}, not the {party}",
        )
    old = rules.business.get(before or "")
    if target == current and old is not None and item.rank < old.rank:
        return Refusal(
            "business-status-backwards",
            f"businessStatus {code} ({item.display}) comes before {old.code} ({old.display})",
        )
    if item.reason_required and change.reason is None:
        return Refusal(
            "reason-required",
            f"{code} ({item.display}) needs a statusReason from {REASON_SYSTEM}",
        )
    if change.reason is not None and change.reason not in rules.reasons:
        return Refusal(
            "unknown-reason",
            f"statusReason {change.reason!r} is not one of: {', '.join(rules.reasons)}",
        )
    return None


def _content(
    task: dict[str, Any] | None,
    status: str,
    code: str | None,
    change: Change,
    added: list[str],
    rules: Table,
) -> dict[str, Any]:
    new = copy.deepcopy(task) if task is not None else {"resourceType": "Task"}
    new["status"] = status
    if code is not None and code in rules.business:
        new["businessStatus"] = business_status(code, rules)
    if change.reason is not None and change.reason in rules.reasons:
        display = rules.reasons[change.reason]
        new["statusReason"] = {
            "coding": [{"system": REASON_SYSTEM, "code": change.reason, "display": display}],
            "text": change.reason_text or display,
        }
    for reference in added:
        new.setdefault("output", []).append(
            {
                "type": {"text": reference.split("/", 1)[0]},
                "valueReference": {"reference": reference},
            }
        )
    if change.at is not None and not _same(task or {}, new):
        new["lastModified"] = change.at.isoformat()
    return new


_IGNORED = ("meta", "lastModified")


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return {k: v for k, v in a.items() if k not in _IGNORED} == {
        k: v for k, v in b.items() if k not in _IGNORED
    }


def request_status(request_status: str | None, task_statuses: Iterable[str]) -> str | None:
    """The referral ServiceRequest's new status once its Tasks are as given, or None to leave
    it: while one Task is open nothing changes (one receiver's rejection does not end a
    referral another receiver may still take); then completed if one Task was, revoked if
    all were rejected, cancelled or failed, entered-in-error if all were."""
    rules = table()
    statuses = list(task_statuses)
    if not statuses or any(s in rules.open for s in statuses):
        return None
    if request_status not in ("active", "on-hold", "draft", None):
        return None  # already closed: the sender's decision stands
    if "completed" in statuses:
        return "completed"
    if all(s == "entered-in-error" for s in statuses):
        return "entered-in-error"
    return "revoked"

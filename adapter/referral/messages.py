"""The changes messages make to referral Tasks: a pipeline step (adapter/pipeline/steps.py
STEPS, after ``save``). An Encounter stored from the receiving facility (ADT^A01 / A04:
arrival or admission, ADT^A03: discharge) or its discharge summary (a Composition of
LOINC 18842-5) moves the open referral Task of that patient owned by that facility and
authored within the table's window before the encounter began (messages: in
adapter/data/referral-states.yaml). A down-slip (回转单) whose ``basedOn`` names the
up-referral moves that referral's Task owned by the facility writing it.

A message that changes nothing new (a duplicate) makes no new Task version; one that
would move a Task backwards (an admission after the discharge, out of order) or that the
table refuses leaves it as it is and says so as an information issue of the message.
The new versions join ``work.saved``, so ``route`` queues them with the message.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, bindparam, select

from adapter.errors import Issue
from adapter.fhir.dates import parse_range
from adapter.fhir.search_query import parse_search
from adapter.referral.apply import RefusedError, apply_change, facility_of, tasks_of
from adapter.referral.machine import Change
from adapter.referral.rules import DIRECTION_SYSTEM, Table, table
from adapter.store import search
from adapter.store.models import Resource

if TYPE_CHECKING:
    from adapter.pipeline.steps import Work

LOINC = "http://loinc.org"


@dataclass(frozen=True, slots=True)
class Event:
    """What one stored resource says of a referred patient at the receiver."""

    source: str  # "Encounter/<id>"
    patient: str  # "Patient/<id>"
    business: str
    began: datetime  # when the encounter began (ties it to a referral authored before)
    output: tuple[str, ...]
    when: datetime | None = None  # when the step happened (the ledger's time of the step)


def advance_referrals(work: Work) -> None:
    """One new version per Task and message: the events of one message about one referral
    (the discharge summary's Encounter and its Composition) are applied together, the
    furthest businessStatus with every output."""
    rules = table()
    by_task: dict[str, tuple[dict[str, Any], list[Event]]] = {}
    stored = {f"{s.resource_type}/{s.id}": s.body for s in work.saved}
    for item in list(work.saved):
        if not item.changed:
            continue  # the same content again: nothing new happened
        try:
            event = event_of(item.body, rules, work.zone, stored)
        except ValueError:  # a date the index could not read either: not an event
            continue
        if event is None:
            for task, answer in answered(work, item.body, rules):
                by_task.setdefault(task["id"], (task, []))[1].append(answer)
            continue
        task = open_task(work, event, rules)
        if task is not None:
            by_task.setdefault(task["id"], (task, []))[1].append(event)
    for task, events in by_task.values():
        furthest = max(events, key=lambda e: rules.business[e.business].rank)
        outputs = tuple(dict.fromkeys(r for e in events for r in e.output))
        _advance(
            work,
            task,
            Event(
                furthest.source,
                furthest.patient,
                furthest.business,
                furthest.began,
                outputs,
                furthest.when,
            ),
        )


def event_of(
    resource: dict[str, Any],
    rules: Table,
    zone: Any,
    stored: dict[str, dict[str, Any]] | None = None,
) -> Event | None:
    """The event a stored resource is (an Encounter by its status and class, a discharge
    summary), or None. ``stored``: the message's resources by reference (a summary's stay
    began when its Encounter began)."""
    kind = resource.get("resourceType")
    patient = str((resource.get("subject") or {}).get("reference") or "")
    if not patient.startswith("Patient/"):
        return None
    ref = f"{kind}/{resource.get('id')}"
    if kind == "Encounter":
        by_class = rules.encounter.get(str(resource.get("status")))
        if not by_class:
            return None
        code = by_class.get(str((resource.get("class") or {}).get("code")), by_class["default"])
        period = resource.get("period") or {}
        start = period.get("start")
        if not start:
            return None
        began = parse_range(start, zone)[0]
        ended = period.get("end") if code == "discharged" else None
        when = parse_range(ended, zone)[0] if ended else began
        return Event(ref, patient, code, began, (ref,), when)
    if kind == "Composition" and _is_discharge_summary(resource, rules):
        encounter = str((resource.get("encounter") or {}).get("reference") or "")
        stay = ((stored or {}).get(encounter) or {}).get("period") or {}
        when = stay.get("start") or resource.get("date")  # the stay began, else written
        if not when:
            return None
        output = (encounter, ref) if encounter.startswith("Encounter/") else (ref,)
        ended = stay.get("end")
        written = parse_range(ended, zone)[0] if ended else None
        return Event(ref, patient, "discharged", parse_range(when, zone)[0], output, written)
    return None


def answered(
    work: Work, resource: dict[str, Any], rules: Table
) -> list[tuple[dict[str, Any], Event]]:
    """The down-slip (回转单) a receiver writes back: a referral ServiceRequest of direction
    down whose ``basedOn`` names the up-referral. Each open Task of that up-referral owned
    by the message's facility is discharged, the down-slip's original document (and the
    down-slip itself) in its output."""
    if resource.get("resourceType") != "ServiceRequest" or _direction(resource) != "down":
        return []
    ref = f"ServiceRequest/{resource.get('id')}"
    found = []
    for based in resource.get("basedOn") or []:
        up = str((based or {}).get("reference") or "")
        if not up.startswith("ServiceRequest/"):
            continue
        for task in tasks_of(work.session, up):
            if task.get("status") not in rules.open:
                continue
            if facility_of(work.session, work.consortium, task.get("owner")) != work.facility.id:
                continue
            documents = tuple(
                str(s["reference"])
                for s in resource.get("supportingInfo") or []
                if str((s or {}).get("reference") or "").startswith("DocumentReference/")
            )
            patient = str((resource.get("subject") or {}).get("reference") or "")
            found.append((task, Event(ref, patient, "discharged", work.moment, (*documents, ref))))
    return found


def _direction(resource: dict[str, Any]) -> str | None:
    return next(
        (
            c.get("code")
            for concept in resource.get("category") or []
            for c in concept.get("coding") or []
            if c.get("system") == DIRECTION_SYSTEM
        ),
        None,
    )


def _is_discharge_summary(resource: dict[str, Any], rules: Table) -> bool:
    return any(
        c.get("system") == LOINC and c.get("code") == rules.discharge_summary
        for c in (resource.get("type") or {}).get("coding") or []
    )


def open_task(work: Work, event: Event, rules: Table) -> dict[str, Any] | None:
    """The newest open referral Task of the patient (any record of the person) owned by the
    message's facility, authored within the window before the event."""
    records = records_about(work, event.patient)
    if not has_tasks(work, records):
        return None  # most patients were never referred: no search (bench/bench_night.py)
    statuses = ",".join(sorted(rules.open))
    found: dict[str, dict[str, Any]] = {}
    for record in records:
        request = parse_search("Task", [("patient", f"Patient/{record}"), ("status", statuses)])
        _, bodies = search(work.session, "Task", request.criteria, count=100)
        found.update({b["id"]: b for b in bodies})
    earliest = event.began - timedelta(days=rules.window_days)
    fitting = []
    for task in found.values():
        authored = task.get("authoredOn")
        when = parse_range(authored, work.zone)[0] if authored else None
        if when is None or not (earliest <= when <= event.began + timedelta(days=1)):
            continue
        if facility_of(work.session, work.consortium, task.get("owner")) != work.facility.id:
            continue
        fitting.append((when, task["id"], task))
    return max(fitting, key=lambda f: (f[0], f[1]))[2] if fitting else None


def records_about(work: Work, patient: str) -> list[str]:
    """The ids a referral of ``Patient/<id>`` may be kept under: the record, its person and
    the person's records (read once per message: ``Work.records``), sorted."""
    person = work.person(patient)
    return sorted({person, *work.records(person), patient.split("/", 1)[1]})


def has_tasks(work: Work, records: list[str]) -> bool:
    """Whether any stored Task is about one of ``records``: one indexed read of the
    resource table (``patient_key`` is a Task's ``for``, the reference its ``patient``
    search parameter reads), before the two searches per record that find the open ones.
    An encounter or discharge summary of a patient never referred (most of a night's
    documents) then costs one statement instead of the searches (decision 0044), and one
    per message, not per event (its Encounter, its Composition ...): the answer is kept on
    the Work. A "no" is asked again once the message has saved another Task version (a
    Task it created); a "yes" stands (the open Tasks are then searched for)."""
    key = tuple(records)
    saved_tasks = sum(1 for s in work.saved if s.resource_type == "Task")
    known = work.task_checks.get(key)
    if known is not None and (known[1] or known[0] == saved_tasks):
        return known[1]
    keys = [f"Patient/{record}" for record in records]
    found = work.core(TASKS_ABOUT, {"keys": keys}).first() is not None
    work.task_checks[key] = (saved_tasks, found)
    return found


def _tasks_about_statement() -> Select[tuple[str]]:
    """The statement of ``has_tasks`` (parameter ``keys``: ``Patient/<id>`` references),
    built once. ``resource_type || ''`` keeps SQLite off the (resource_type, last_updated,
    id) index: without statistics its planner took it for ``resource_type = 'Task'`` and
    read every Task of the store for each document (36 % of a 50,000-document night's time
    once 7,500 referrals were stored), where the patient_key index finds the patient's few
    resources. PostgreSQL plans it the same way."""
    resource = Resource.__table__
    return (
        select(resource.c.id)
        .where(
            resource.c.patient_key.in_(bindparam("keys", expanding=True)),
            resource.c.resource_type.concat("") == "Task",
            resource.c.deleted.is_(False),
        )
        .limit(1)
    )


TASKS_ABOUT = _tasks_about_statement()


def tasks_about(records: list[str]) -> Select[tuple[str]]:
    """``has_tasks``'s statement with ``records`` bound (its query plan is tested)."""
    return TASKS_ABOUT.params(keys=[f"Patient/{record}" for record in records])


def _advance(work: Work, task: dict[str, Any], event: Event) -> None:
    chain: list[Change] = []
    if task.get("status") == "requested":
        chain.append(Change("received", at=work.moment))  # arrival implies receipt
    chain.append(Change("in-progress", event.business, output=event.output, at=work.moment))
    where = work.origins.get(tuple(event.source.split("/", 1))) or event.source
    try:
        applied = apply_change(
            work.session,
            work.consortium,
            task["id"],
            chain[0],
            work.facility.id,
            now=work.moment,
            message_id=work.message.id,
            then=chain[1:],
            queue=False,
            step_at=event.when,
        )
    except RefusedError as refused:
        work.issues.append(
            Issue(
                "information",
                "informational",
                f"referral Task/{task['id']} left as it is ({event.business} from "
                f"{event.source}): refused by rule {refused.rule}",
                location=where,
                expression="Task.status",
            )
        )
        return
    if applied.changed:
        work.saved.extend(s for s in applied.saved if s.changed)
        work.issues.append(
            Issue(
                "information",
                "informational",
                f"referral Task/{task['id']} moved to {applied.task['status']} / "
                f"{event.business} by {event.source}",
                location=where,
            )
        )

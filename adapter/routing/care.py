"""Care relationships as the routing sees them: which facilities a message shows caring
for a person (``care_facts``), and who receives a resource (``recipients``).

Pure decisions on data: the rows themselves are kept by adapter.store.care, and the
pipeline's steps bring the two together (adapter/pipeline/steps.py).

A facility cares for a person when
  activity    it sent or ordered something for the person (a result, an order, an
              encounter ...) within ``care.windows.activity_days`` (365 by default);
  referral    it is the requester or the receiver of a referral of the person (the
              referral ServiceRequest and its Task), from the slip until the loop closes
              plus ``care.windows.referral_after_close_days`` (30);
  registered  it is the person's registered primary facility (Patient.generalPractitioner
              naming a member facility, or the API);
  grant       the API says so (who, why), until revoked.
A revocation through the API withholds the person from the facility while it lasts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from adapter.consortium import Consortium
from adapter.fhir.index_values import patient_key
from adapter.routing.routes import routed

REFERRAL = "3457005"  # SNOMED CT Patient referral: the referral ServiceRequest's category
# what a facility "sent or ordered for the person" (a Patient record alone is not care)
ACTIVITY_TYPES = frozenset(
    {
        "AllergyIntolerance",
        "Composition",
        "Condition",
        "DiagnosticReport",
        "DocumentReference",
        "Encounter",
        "ImagingStudy",
        "Immunization",
        "MedicationRequest",
        "MedicationStatement",
        "Observation",
        "Procedure",
        "ServiceRequest",
        "Specimen",
    }
)
CLOSED_REQUEST = frozenset({"completed", "revoked", "entered-in-error"})
CLOSED_TASK = frozenset({"completed", "cancelled", "rejected", "failed", "entered-in-error"})
# the order in which a facility's reasons are named (the strongest first)
SOURCE_ORDER = ("registered", "referral", "grant", "activity")


@dataclass(frozen=True, slots=True)
class CareFact:
    """One care relationship a message shows: ``end`` None while it stays open."""

    patient: str  # "Patient/<id>"
    facility: str
    source: str  # activity | referral | registered
    ref: str  # "" or the referral's "ServiceRequest/<id>"
    start: datetime
    end: datetime | None
    detail: str  # what showed it ("Observation/abc", "Task/xyz completed")


class CareLike(Protocol):
    """A stored relationship (adapter.store.care.CareRow) as the routing reads it."""

    @property
    def facility_id(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def ref(self) -> str: ...
    @property
    def end_at(self) -> datetime | None: ...


@dataclass(frozen=True, slots=True)
class Recipient:
    """A destination that receives a resource, and why. ``care_facility`` is set when care
    alone chose it: the worker checks that care again before sending."""

    destination: str
    reason: str
    care_facility: str | None = None


def routes_by_care(consortium: Consortium) -> bool:
    """Routing by care is on when the file says so, or says nothing and has no routes."""
    chosen = consortium.care.routing
    return chosen if chosen is not None else not consortium.routes


# -- what a message shows -----------------------------------------------------------------------
def care_facts(
    consortium: Consortium,
    facility_id: str,
    resources: Sequence[dict[str, Any]],
    moment: datetime,
    patients: Sequence[str | None] | None = None,
) -> list[CareFact]:
    """The care relationships one stored message shows (``facility_id`` sent it).
    ``patients``: each resource's ``patient_key``, when the caller has them already."""
    windows = consortium.care.windows
    by_ref = {f"{r.get('resourceType')}/{r.get('id')}": r for r in resources}
    facts: list[CareFact] = []
    active_until = moment + timedelta(days=windows.activity_days)
    seen_activity: set[str] = set()
    for at, resource in enumerate(resources):
        kind = resource.get("resourceType")
        patient = patient_key(resource) if patients is None else patients[at]
        if patient is None:
            continue
        ref = f"{kind}/{resource.get('id')}"
        if kind in ACTIVITY_TYPES and patient not in seen_activity:
            seen_activity.add(patient)
            facts.append(CareFact(patient, facility_id, "activity", "", moment, active_until, ref))
        if kind == "ServiceRequest" and _is_referral(resource):
            facts.extend(_referral_facts(consortium, resource, resources, by_ref, patient, moment))
        if kind == "Patient":
            for gp in resource.get("generalPractitioner") or []:
                member = member_of(consortium, gp, by_ref)
                if member is not None:
                    facts.append(CareFact(patient, member, "registered", "", moment, None, ref))
    return facts


def _is_referral(resource: dict[str, Any]) -> bool:
    return any(
        coding.get("code") == REFERRAL
        for concept in resource.get("category") or []
        for coding in concept.get("coding") or []
    )


def _referral_facts(
    consortium: Consortium,
    request: dict[str, Any],
    resources: Sequence[dict[str, Any]],
    by_ref: Mapping[str, dict[str, Any]],
    patient: str,
    moment: datetime,
) -> Iterable[CareFact]:
    ref = f"ServiceRequest/{request.get('id')}"
    parties = [request.get("requester"), *(request.get("performer") or [])]
    tasks = [
        r
        for r in resources
        if r.get("resourceType") == "Task" and ((r.get("focus") or {}).get("reference") == ref)
    ]
    for task in tasks:
        parties.extend([task.get("requester"), task.get("owner")])
    closed = request.get("status") in CLOSED_REQUEST or (
        bool(tasks) and all(t.get("status") in CLOSED_TASK for t in tasks)
    )
    after = timedelta(days=consortium.care.windows.referral_after_close_days)
    end = moment + after if closed else None
    detail = f"{ref} {request.get('status')}" + (
        f", Task {'/'.join(sorted({str(t.get('status')) for t in tasks}))}" if tasks else ""
    )
    members: list[str] = []
    for party in parties:
        member = member_of(consortium, party, by_ref)
        if member is not None and member not in members:
            members.append(member)
    for member in members:
        yield CareFact(patient, member, "referral", ref, moment, end, detail)


def member_of(
    consortium: Consortium, reference: Any, by_ref: Mapping[str, dict[str, Any]]
) -> str | None:
    """The member facility an Organization (or a PractitionerRole's organization) of the
    message is: by an identifier the consortium file gives it, else by its name."""
    if not isinstance(reference, dict):
        return None
    target = by_ref.get(str(reference.get("reference") or ""))
    if target is not None and target.get("resourceType") == "PractitionerRole":
        target = by_ref.get(str((target.get("organization") or {}).get("reference") or ""))
    if target is None or target.get("resourceType") != "Organization":
        return None
    keys = {
        (i.get("system"), i.get("value"))
        for i in target.get("identifier") or []
        if isinstance(i, dict)
    }
    for facility in consortium.facilities:
        if any((i.system, i.value) in keys for i in facility.identifiers):
            return facility.id
    name = target.get("name")
    return next((f.id for f in consortium.facilities if name and f.name == name), None)


# -- who receives a resource --------------------------------------------------------------------
def recipients(
    consortium: Consortium,
    facility_id: str,
    resource_type: str,
    caring: Mapping[str, Sequence[CareLike]] | None = None,
) -> list[Recipient]:
    """Destinations of one resource produced at ``facility_id``: the static routes' (in
    route order), then, routing by care, the enabled destinations of every facility in
    ``caring`` (facility id -> its open relationships with the resource's person)."""
    chosen: dict[str, Recipient] = {}
    for destination, number in routed(consortium, facility_id, resource_type):
        chosen.setdefault(destination, Recipient(destination, f"route {number}"))
    if caring and routes_by_care(consortium):
        for facility in sorted(caring):
            rows = caring[facility]
            if not rows:
                continue
            why = "care: " + "; ".join(describe(r) for r in _strongest_first(rows))
            config = consortium.facility(facility)
            for destination in config.destinations if config else []:
                if destination.enabled and destination.id not in chosen:
                    chosen[destination.id] = Recipient(destination.id, why, facility)
    return list(chosen.values())


def describe(row: CareLike) -> str:
    """One relationship in a reason: ``referral ServiceRequest/abc (until ...)``."""
    text = row.source + (f" {row.ref}" if row.ref and row.source == "referral" else "")
    if row.end_at is not None:
        text += f" (until {row.end_at.date().isoformat()})"
    return text


def _strongest_first(rows: Sequence[CareLike]) -> list[CareLike]:
    rank = {s: n for n, s in enumerate(SOURCE_ORDER)}
    return sorted(rows, key=lambda r: (rank.get(r.source, 99), r.ref))

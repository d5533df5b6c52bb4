"""Routing by care as pure decisions (adapter.routing.care): what a message shows, who
receives a resource and why. The consortium is the example's, routes removed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from adapter.consortium import Consortium
from adapter.routing import care_facts, recipients, routes_by_care

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 3, 1, tzinfo=UTC)
A, COUNTY = "shiqiao-township-centre", "qingshan-county-hospital"


def _consortium(*, routes: bool = False, enabled: bool = True) -> Consortium:
    data = yaml.safe_load((ROOT / "fixtures" / "consortium.yaml").read_text(encoding="utf-8"))
    if not routes:
        data.pop("routes")
    for facility in data["facilities"]:
        for destination in facility["destinations"]:
            destination["enabled"] = enabled
    return Consortium.model_validate(data)


def _org(oid: str, code: str, name: str) -> dict[str, Any]:
    return {
        "resourceType": "Organization",
        "id": oid,
        "name": name,
        "identifier": [{"system": "urn:oid:2.16.156.10011.1.5", "value": code}],
    }


def _referral(status: str = "active", task: str = "requested") -> list[dict[str, Any]]:
    subject = {"reference": "Patient/p1"}
    return [
        {"resourceType": "Patient", "id": "p1"},
        _org("o-a", "453102982", "whatever the slip says"),
        _org("o-c", "453102712", "青山县人民医院"),
        {
            "resourceType": "PractitionerRole",
            "id": "r1",
            "organization": {"reference": "Organization/o-a"},
        },
        {
            "resourceType": "ServiceRequest",
            "id": "sr1",
            "status": status,
            "intent": "order",
            "category": [{"coding": [{"system": "http://snomed.info/sct", "code": "3457005"}]}],
            "subject": subject,
            "requester": {"reference": "PractitionerRole/r1"},
            "performer": [{"reference": "Organization/o-c"}],
        },
        {
            "resourceType": "Task",
            "id": "t1",
            "status": task,
            "intent": "order",
            "focus": {"reference": "ServiceRequest/sr1"},
            "for": subject,
            "owner": {"reference": "Organization/o-c"},
        },
    ]


def test_a_referral_makes_both_parties_care_and_its_sender_active() -> None:
    facts = care_facts(_consortium(), A, _referral(), NOW)
    seen = {(f.facility, f.source, f.ref, f.end) for f in facts}
    assert seen == {
        (A, "activity", "", NOW + timedelta(days=365)),
        (A, "referral", "ServiceRequest/sr1", None),  # open: no end
        (COUNTY, "referral", "ServiceRequest/sr1", None),
    }
    assert all(f.patient == "Patient/p1" for f in facts)


def test_a_closed_loop_ends_the_referral_after_the_window() -> None:
    for status, task in (("completed", "requested"), ("active", "completed")):
        facts = care_facts(_consortium(), A, _referral(status, task), NOW)
        ends = {f.end for f in facts if f.source == "referral"}
        assert ends == {NOW + timedelta(days=30)}, (status, task)
    facts = care_facts(_consortium(), A, _referral("active", "accepted"), NOW)
    assert {f.end for f in facts if f.source == "referral"} == {None}


def test_a_patient_record_alone_is_no_care_its_registration_is() -> None:
    patient = {"resourceType": "Patient", "id": "p1"}
    assert care_facts(_consortium(), A, [patient], NOW) == []
    registered = {**patient, "generalPractitioner": [{"reference": "Organization/o-a"}]}
    org = _org("o-a", "453102982", "石桥")
    [fact] = care_facts(_consortium(), COUNTY, [registered, org], NOW)
    assert (fact.facility, fact.source, fact.end) == (A, "registered", None)


def test_an_organization_outside_the_consortium_is_no_party() -> None:
    resources = _referral()
    resources[2] = _org("o-c", "999999999", "市第一人民医院")
    facts = care_facts(_consortium(), A, resources, NOW)
    assert {f.facility for f in facts} == {A}


@dataclass
class Row:
    facility_id: str
    source: str
    ref: str = ""
    end_at: datetime | None = None


def test_recipients_are_the_caring_facilities_enabled_destinations_with_reasons() -> None:
    consortium = _consortium()
    assert routes_by_care(consortium)
    caring = {
        A: [Row(A, "activity", end_at=NOW), Row(A, "referral", "ServiceRequest/sr1")],
        COUNTY: [Row(COUNTY, "referral", "ServiceRequest/sr1")],
    }
    chosen = recipients(consortium, COUNTY, "Observation", caring)
    assert [(r.destination, r.care_facility) for r in chosen] == [
        ("county-hospital-fhir", COUNTY),
        ("shiqiao-fhir", A),
    ]
    assert chosen[1].reason == (
        "care: referral ServiceRequest/sr1; activity (until 2026-03-01)"
    )  # the strongest first
    assert recipients(consortium, COUNTY, "Observation", {}) == []  # nobody cares: nobody
    disabled = _consortium(enabled=False)
    assert recipients(disabled, COUNTY, "Observation", caring) == []


def test_static_routes_alone_unless_combined() -> None:
    routed = _consortium(routes=True)
    caring = {A: [Row(A, "activity")]}
    assert not routes_by_care(routed)
    only_routes = recipients(routed, A, "Observation", caring)
    assert [(r.destination, r.reason) for r in only_routes] == [("county-hospital-fhir", "route 1")]
    combined = routed.model_copy(update={"care": routed.care.model_copy(update={"routing": True})})
    both = recipients(combined, A, "Observation", caring)
    assert [(r.destination, r.reason, r.care_facility) for r in both] == [
        ("county-hospital-fhir", "route 1", None),  # a route's choice is never withdrawn
        ("shiqiao-fhir", "care: activity", A),
    ]

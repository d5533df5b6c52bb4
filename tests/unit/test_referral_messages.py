"""Which stored resources are referral events (adapter/referral/messages.py event_of): the
Encounter of an ADT message by its status and class, the discharge summary."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from adapter.referral.messages import event_of
from adapter.referral.rules import table

ZONE = ZoneInfo("Asia/Shanghai")


def _encounter(status: str, kind: str, start: str | None = "2026-12-01T10:30:00+08:00"):
    body: dict[str, Any] = {
        "resourceType": "Encounter",
        "id": "e1",
        "status": status,
        "class": {"code": kind},
        "subject": {"reference": "Patient/p1"},
    }
    if start:
        body["period"] = {"start": start}
    return body


@pytest.mark.parametrize(
    ("status", "kind", "expected"),
    [
        ("arrived", "AMB", "arrived"),  # ADT^A04 registration
        ("arrived", "EMER", "arrived"),
        ("in-progress", "IMP", "admitted"),  # ADT^A01
        ("in-progress", "AMB", "arrived"),
        ("finished", "IMP", "discharged"),  # ADT^A03
        ("planned", "IMP", None),  # a pre-admission is not an arrival
        ("entered-in-error", "AMB", None),  # ADT^A11 cancels a visit: nothing moves
        ("cancelled", "IMP", None),
    ],
)
def test_encounters(status: str, kind: str, expected: str | None) -> None:
    event = event_of(_encounter(status, kind), table(), ZONE)
    assert (event.business if event else None) == expected
    if event:
        assert event.output == ("Encounter/e1",) and event.patient == "Patient/p1"


def test_an_encounter_without_start_or_patient_is_no_event() -> None:
    assert event_of(_encounter("in-progress", "IMP", start=None), table(), ZONE) is None
    no_patient = {**_encounter("in-progress", "IMP"), "subject": {"reference": "Group/g"}}
    assert event_of(no_patient, table(), ZONE) is None


def test_discharge_summary_with_its_stay() -> None:
    summary = {
        "resourceType": "Composition",
        "id": "c1",
        "type": {"coding": [{"system": "http://loinc.org", "code": "18842-5"}]},
        "subject": {"reference": "Patient/p1"},
        "encounter": {"reference": "Encounter/e1"},
        "date": "2026-12-08T15:40:00+08:00",
    }
    stay = _encounter("finished", "IMP")
    event = event_of(summary, table(), ZONE, {"Encounter/e1": stay})
    assert event is not None and event.business == "discharged"
    assert event.output == ("Encounter/e1", "Composition/c1")
    assert event.began == datetime(2026, 12, 1, 10, 30, tzinfo=ZONE)  # the stay began
    alone = event_of(summary, table(), ZONE)
    assert alone is not None  # else when it was written
    assert alone.began == datetime(2026, 12, 8, 15, 40, tzinfo=ZONE)
    other = {**summary, "type": {"coding": [{"system": "http://loinc.org", "code": "11488-4"}]}}
    assert event_of(other, table(), ZONE) is None  # a consult note alone moves nothing

"""The run-time check of produced resources (adapter/pipeline/checks.py): a primitive that
would make invalid FHIR is an error naming the element."""

from __future__ import annotations

from typing import Any

import pytest

from adapter.pipeline.checks import check_resources


def observation(**elements: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": "obs-1",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "6690-2"}]},
        **elements,
    }


def found(resource: dict[str, Any]) -> list[tuple[str, str | None, str]]:
    return [(i.severity, i.expression, i.diagnostics) for i in check_resources([resource])]


def test_a_good_resource_passes() -> None:
    assert (
        found(
            observation(
                effectiveDateTime="2026-11-20T08:30:00+08:00",
                issued="2026-11-20T09:00:00+08:00",
                valueQuantity={
                    "value": 6.5,
                    "unit": "10^9/L",
                    "system": "http://unitsofmeasure.org",
                    "code": "10*9/L",
                },
                note=[{"text": "第一行\n第二行\t缩进"}],
            )
        )
        == []
    )


def test_control_character_in_a_string() -> None:
    ((severity, expression, diagnostics),) = found(
        observation(note=[{"text": "ok"}, {"text": "bell\x07 inside"}])
    )
    assert severity == "error"
    assert expression == "Observation.note[1].text"
    assert diagnostics.startswith("Observation/obs-1: ")
    assert "control" in diagnostics and "bell" not in diagnostics


@pytest.mark.parametrize(
    ("element", "value", "expression"),
    [
        ("effectiveDateTime", "2026-13-01", "Observation.effectiveDateTime"),
        ("effectiveDateTime", "2026-11-20T08:30:00", "Observation.effectiveDateTime"),  # no zone
        ("effectiveDateTime", "20261120", "Observation.effectiveDateTime"),
        ("issued", "2026-11-20", "Observation.issued"),  # an instant needs a time
    ],
)
def test_bad_date_times(element: str, value: str, expression: str) -> None:
    ((severity, where, _),) = found(observation(**{element: value}))
    assert (severity, where) == ("error", expression)


def test_bad_id() -> None:
    resource = observation()
    resource["id"] = "has space/and slash"
    ((severity, where, diagnostics),) = found(resource)
    assert (severity, where) == ("error", "Observation.id")
    assert "not a FHIR id" in diagnostics


def test_nested_dates_and_codes() -> None:
    issues = found(
        observation(
            referenceRange=[{"low": {"value": 3.5, "code": "bad  code"}}],
            specimen={"reference": "Specimen/s1"},
            component=[{"valueDateTime": "2026-02-30"}],
        )
    )
    assert [(s, e) for s, e, _ in issues] == [
        ("error", "Observation.referenceRange[0].low.code"),
        ("error", "Observation.component[0].valueDateTime"),
    ]


def test_blank_string() -> None:
    ((_, where, _),) = found(observation(note=[{"text": "   "}]))
    assert where == "Observation.note[0].text"


@pytest.mark.parametrize("number", [float("nan"), float("inf"), float("-inf")])
def test_numbers_that_json_cannot_carry(number: float) -> None:
    ((severity, where, _),) = found(observation(valueQuantity={"value": number}))
    assert (severity, where) == ("error", "Observation.valueQuantity.value")


def test_recorded_date_is_a_date_time() -> None:
    """Condition.recordedDate and AllergyIntolerance.recordedDate are dateTime in R4,
    although their names end in Date."""
    condition = {
        "resourceType": "Condition",
        "id": "c1",
        "recordedDate": "2026-11-20T08:30:00+08:00",
        "subject": {"reference": "Patient/p1"},
    }
    assert found(condition) == []


def test_ids_inside_elements_are_strings() -> None:
    """Element.id is a string in R4 (only Resource.id is an id)."""
    resource = observation(
        extension=[{"id": "ext_1", "url": "http://example.org/x", "valueString": "v"}]
    )
    assert found(resource) == []


def test_several_resources_each_named() -> None:
    issues = check_resources(
        [
            observation(effectiveDateTime="2026-13-01"),
            {"resourceType": "Patient", "id": "p1", "birthDate": "1987-02-30"},
        ]
    )
    assert [(i.expression, i.diagnostics.split(":")[0]) for i in issues] == [
        ("Observation.effectiveDateTime", "Observation/obs-1"),
        ("Patient.birthDate", "Patient/p1"),
    ]


def test_a_value_seen_to_pass_is_checked_once_per_type_and_a_bad_one_every_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from adapter.pipeline import checks

    asked: list[tuple[str, Any]] = []
    real = checks.check_primitive

    def counting(kind: str, value: Any) -> str | None:
        asked.append((kind, value))
        return real(kind, value)

    monkeypatch.setattr(checks, "check_primitive", counting)
    system = "urn:oid:2.16.156.10011.2.1.999.1"  # a system no other test checks
    resource = observation(
        code={"coding": [{"system": system, "code": "Cheque_Once 1"}]},
        effectiveDateTime="2026-11-20T08:30:00+08:00",
    )
    assert found(resource) == []
    assert found(resource) == []
    assert asked.count(("uri", system)) == 1  # the second resource asked nothing again
    assert asked.count(("code", "Cheque_Once 1")) == 1
    # a text that passed as one type is still judged as another: a code is not an id
    bad_id = dict(resource, id="Cheque_Once 1")
    for _ in range(2):  # and a value that fails is reported every time it is met
        assert found(bad_id) == [
            (
                "error",
                "Observation.id",
                "Observation/Cheque_Once 1: value is not a FHIR id (1-64 of A-Z a-z 0-9 - .)",
            )
        ]

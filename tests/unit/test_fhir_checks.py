"""The test helper tests/fhir_checks.py: what each validator reports, and where.

Several tests pin a *difference* between the fhir.resources R4B models and the official R4
JSON schema (see the module docstring of tests/fhir_checks.py). If a new release of either
closes a gap, the pinning assertion fails: update the note there and the test here.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.fhir_checks import JSON_RULES, MODEL, SCHEMA, assert_valid_r4, validate_r4


def observation(**changes: Any) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": "obs-glu-1",
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "laboratory",
                    }
                ]
            }
        ],
        "code": {
            "coding": [{"system": "http://loinc.org", "code": "2345-7", "display": "Glucose"}],
            "text": "血糖",
        },
        "subject": {"reference": "Patient/pat-1"},
        "effectiveDateTime": "2026-11-25T13:40:00+08:00",
        "valueQuantity": {
            "value": 6.1,
            "unit": "mmol/L",
            "system": "http://unitsofmeasure.org",
            "code": "mmol/L",
        },
        "referenceRange": [
            {
                "low": {"value": 3.9, "unit": "mmol/L"},
                "high": {"value": 6.1, "unit": "mmol/L"},
            }
        ],
    }
    resource.update(changes)
    return resource


def patient(**changes: Any) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Patient",
        "id": "pat-1",
        "identifier": [{"system": "urn:oid:2.16.156.10011.1.1", "value": "P0001"}],
        "name": [{"text": "测试患者", "family": "测", "given": ["试"]}],
        "gender": "female",
        "birthDate": "1990-03-07",
    }
    resource.update(changes)
    return resource


def oru_bundle(observations: int = 20) -> dict[str, Any]:
    """About what one ORU^R01 becomes: a Patient, a DiagnosticReport, its Observations."""
    obs = [observation(id=f"obs-{i}") for i in range(observations)]
    report = {
        "resourceType": "DiagnosticReport",
        "id": "rep-1",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "24323-8"}]},
        "subject": {"reference": "Patient/pat-1"},
        "effectiveDateTime": "2026-11-25T13:40:00+08:00",
        "issued": "2026-11-25T14:02:11.000+08:00",
        "result": [{"reference": f"Observation/{o['id']}"} for o in obs],
    }
    resources = [patient(), report, *obs]
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"fullUrl": f"urn:uuid:00000000-0000-4000-8000-{i:012d}", "resource": r}
            for i, r in enumerate(resources)
        ],
    }


def by(validator: str, problems: list[str]) -> list[str]:
    return [p for p in problems if p.startswith(f"{validator}: ")]


# ---- valid input -----------------------------------------------------------------------


def test_valid_observation_passes() -> None:
    assert validate_r4(observation()) == []
    assert_valid_r4(observation())


def test_valid_oru_sized_bundle_passes() -> None:
    assert validate_r4(oru_bundle()) == []


def test_validation_does_not_change_the_resource() -> None:
    bundle = oru_bundle(3)
    before = copy.deepcopy(bundle)
    validate_r4(bundle)
    assert bundle == before


# ---- the three cases every golden test relies on ----------------------------------------


def test_patient_gender_outside_the_required_value_set() -> None:
    problems = validate_r4(patient(gender="男"))
    assert by(SCHEMA, problems) == [
        "R4 JSON schema: Patient.gender: '男' is not one of ['male', 'female', 'other', 'unknown']"
    ]
    # Pinned gap: the R4B models do not check required bindings.
    assert by(MODEL, problems) == []
    with pytest.raises(AssertionError, match=r"Patient/pat-1 is not valid FHIR R4 \(1 problems\)"):
        assert_valid_r4(patient(gender="男"))


def test_observation_without_status() -> None:
    resource = observation()
    del resource["status"]
    problems = validate_r4(resource)
    model = by(MODEL, problems)
    assert len(model) == 1 and model[0].startswith("fhir.resources R4B: Observation.status: ")
    assert "required" in model[0]
    # Pinned gap: the schema leaves 1..1 primitives optional (``_status`` may stand in).
    assert by(SCHEMA, problems) == []
    with pytest.raises(AssertionError, match=r"Observation\.status"):
        assert_valid_r4(resource)


@pytest.mark.parametrize(
    "value",
    [
        "2026-11-25T13:40:00",  # a time without a time zone
        "20261125134000",  # the HL7 v2 form, not converted
        "2026-11-25 13:40:00+08:00",  # space instead of T
    ],
)
def test_bad_date_time_is_reported_by_both(value: str) -> None:
    problems = validate_r4(observation(effectiveDateTime=value))
    for validator in (MODEL, SCHEMA):
        found = by(validator, problems)
        assert found, f"{validator} did not report {value!r}"
        assert all(p.startswith(f"{validator}: Observation.effectiveDateTime: ") for p in found)


# ---- nested resources: precise paths ----------------------------------------------------


def test_bad_bundle_entry_is_located_by_both() -> None:
    bundle = oru_bundle(3)
    bundle["entry"][3]["resource"]["effectiveDateTime"] = "2026-13-01"
    problems = validate_r4(bundle)
    where = "Bundle.entry[3].resource.effectiveDateTime: "
    assert by(MODEL, problems) and all(where in p for p in by(MODEL, problems))
    assert by(SCHEMA, problems) and all(where in p for p in by(SCHEMA, problems))
    # No "not valid under any of the given schemas" from the ResourceList oneOf.
    assert not any("any of the given schemas" in p for p in problems)


def test_entry_gender_and_contained_resources_are_checked_by_the_schema() -> None:
    bundle = oru_bundle(1)
    bundle["entry"][0]["resource"]["gender"] = "M"
    bundle["entry"][2]["resource"]["contained"] = [
        {"resourceType": "Specimen", "id": "sp1", "status": "good"}
    ]
    problems = by(SCHEMA, validate_r4(bundle))
    assert problems == [
        "R4 JSON schema: Bundle.entry[0].resource.gender: 'M' is not one of "
        "['male', 'female', 'other', 'unknown']",
        "R4 JSON schema: Bundle.entry[2].resource.contained[0].status: 'good' is not one of "
        "['available', 'unavailable', 'unsatisfactory', 'entered-in-error']",
    ]


# ---- further pinned differences ---------------------------------------------------------


def test_schema_only_findings() -> None:
    cases = {
        "long id": patient(id="p" * 65),
        "number as string": observation(valueQuantity={"value": "6.1", "unit": "mmol/L"}),
        "boolean as string": patient(active="true"),
        "R4B-only extension type": patient(
            extension=[
                {
                    "url": "http://example.org/ext",
                    "valueCodeableReference": {"reference": {"reference": "Patient/pat-2"}},
                }
            ]
        ),
    }
    for name, resource in cases.items():
        problems = validate_r4(resource)
        assert by(SCHEMA, problems), name
        assert by(MODEL, problems) == [], name


def test_model_only_findings() -> None:
    cases = {
        "two values of value[x]": observation(valueString="偏高"),
        "impossible date": observation(effectiveDateTime="2026-02-30"),
    }
    for name, resource in cases.items():
        problems = validate_r4(resource)
        assert by(MODEL, problems), name
        assert by(SCHEMA, problems) == [], name


def test_r4b_only_resource_type_is_refused() -> None:
    problems = validate_r4({"resourceType": "NutritionProduct", "status": "active"})
    assert problems == ["R4 JSON schema: NutritionProduct: unknown resourceType 'NutritionProduct'"]


def test_r4_type_missing_from_r4b_is_left_to_the_schema() -> None:
    product = {"resourceType": "MedicinalProduct", "id": "mp1", "name": [{"productName": "x"}]}
    assert validate_r4(product) == []
    problems = validate_r4({**product, "id": "mp 1"})
    assert by(SCHEMA, problems) and not by(MODEL, problems)


def test_unknown_resource_type() -> None:
    problems = validate_r4({"resourceType": "Patientt"})
    assert by(MODEL, problems) == ["fhir.resources R4B: Patientt: unknown resourceType 'Patientt'"]
    assert by(SCHEMA, problems) == ["R4 JSON schema: Patientt: unknown resourceType 'Patientt'"]


# ---- JSON representation rules --------------------------------------------------------------


def test_json_rules_catch_what_neither_validator_does() -> None:
    problems = validate_r4(patient(name=[], telecom=[{}]))
    assert by(MODEL, problems) == [] and by(SCHEMA, problems) == []
    assert by(JSON_RULES, problems) == [
        "FHIR JSON rules: Patient.name: empty array is not allowed",
        "FHIR JSON rules: Patient.telecom[0]: empty object is not allowed",
    ]


def test_empty_string_is_reported_by_all_three() -> None:
    problems = validate_r4(patient(name=[{"family": ""}]))
    assert by(MODEL, problems) and by(SCHEMA, problems)
    assert "FHIR JSON rules: Patient.name[0].family: empty string is not allowed" in problems


def test_json_rules_null() -> None:
    problems = validate_r4(patient(active=None))
    assert "FHIR JSON rules: Patient.active: null is not allowed" in problems
    assert by(SCHEMA, problems)


def test_json_rules_allow_null_in_aligned_arrays() -> None:
    resource = patient(
        name=[
            {
                "given": ["试", None],
                "_given": [
                    None,
                    {"extension": [{"url": "http://example.org/x", "valueString": "y"}]},
                ],
            }
        ]
    )
    assert by(JSON_RULES, validate_r4(resource)) == []
    # ... but the R4 schema refuses them, and it wins (see tests/fhir_checks.py).
    assert by(SCHEMA, validate_r4(resource))


# -- the R4 invariants (FHIRPath constraints of the StructureDefinitions) --------------------

COMPOSITION = {
    "resourceType": "Composition",
    "id": "c1",
    "status": "final",
    "type": {"text": "出院小结"},
    "date": "2026-11-20",
    "author": [{"display": "王医生"}],
    "title": "出院小结",
}


def test_a_section_with_only_an_empty_reason_breaks_cmp_1() -> None:
    bad = {**COMPOSITION, "section": [{"title": "出院带药", "emptyReason": {"text": "无"}}]}
    assert [p for p in validate_r4(bad) if "cmp-1" in p] == [
        "R4 invariant: Composition: cmp-1 (Composition.section): A section must contain at "
        "least one of text, entries, or sub-sections"
    ]
    text = {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">无</div>'}
    good = {**COMPOSITION, "section": [{**bad["section"][0], "text": text}]}
    assert validate_r4(good) == []


def test_a_value_and_a_data_absent_reason_break_obs_6() -> None:
    observation = {
        "resourceType": "Observation",
        "id": "o1",
        "status": "final",
        "code": {"text": "WBC"},
        "valueQuantity": {"value": 6.5},
        "dataAbsentReason": {"text": "unknown"},
    }
    assert any("obs-6" in p for p in validate_r4(observation))


def test_invariants_of_resources_inside_a_bundle_are_checked() -> None:
    bad = {**COMPOSITION, "section": [{"title": "空"}]}
    bundle = {
        "resourceType": "Bundle",
        "id": "b1",
        "type": "collection",
        "entry": [{"fullUrl": "urn:uuid:1", "resource": bad}],
    }
    assert any(
        p.startswith("R4 invariant: Bundle.entry[0].resource: cmp-1") for p in validate_r4(bundle)
    )

"""A node's index values are derived once and shared by the resources having it (decision
0113): the same values and rows as a fresh derivation, whatever came before; a node that is
not plain JSON is never taken for another; the memo is bounded. ``patient_key`` from its
compiled paths gives what reading the patient parameters' references gave."""

from __future__ import annotations

import copy
from datetime import UTC, timedelta, timezone
from typing import Any

import pytest

from adapter.fhir import index_values as iv
from adapter.fhir.index_values import IndexValue, index_values, patient_key
from adapter.fhir.search_params import RESOURCES
from adapter.store.resources import _index_tail, _index_tuples

_CODE = {
    "coding": [
        {"system": "https://h.example.cn/lab-item", "code": "6101", "display": "C反应蛋白"},
        {"system": "http://loinc.org", "code": "1988-5", "display": "CRP"},
    ],
    "text": "C反应蛋白",
}


def _observation(n: int, code: Any = _CODE, when: str = "2026-11-24T13:05:00") -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": f"o{n}",
        "identifier": [{"system": "https://h.example.cn/lab-result", "value": f"r{n}"}],
        "status": "final",
        "code": copy.deepcopy(code),
        "subject": {"reference": f"Patient/p{n}"},
        "effectiveDateTime": when,
        "valueQuantity": {"value": 12.5, "unit": "mg/L", "code": "mg/L"},
    }


def _fresh(resource: dict[str, Any], zone: Any = iv.DEFAULT_ZONE) -> list[IndexValue]:
    iv._MEMO.clear()
    return index_values(resource, zone)


def test_memoised_values_and_rows_equal_a_fresh_derivation() -> None:
    iv._MEMO.clear()
    first = index_values(_observation(1))
    assert iv._MEMO  # the concept and the texts were kept
    second = index_values(_observation(2))
    assert second == _fresh(_observation(2))
    # the concept's values are the very objects of the first resource's
    shared = [v for v in second if v.param == "code"]
    assert shared and all(any(v is w for w in first) for v in shared)
    rows = _index_tuples("Observation", 7, second)
    iv._MEMO.clear()
    fresh = index_values(_observation(2))
    assert rows == _index_tuples("Observation", 7, fresh)
    # a value's cached row is its own derivation
    assert all(v.row == _index_tail(IndexValue(**_fields(v))) for v in second)


def _fields(v: IndexValue) -> dict[str, Any]:
    names = ("param", "kind", "system", "code", "value", "value_norm")
    more = ("date_start", "date_end", "number", "reference")
    return {name: getattr(v, name) for name in (*names, *more)}


def test_a_concept_changed_in_any_part_is_derived_again() -> None:
    iv._MEMO.clear()
    index_values(_observation(1))
    other = copy.deepcopy(_CODE)
    other["coding"][0]["display"] = "降钙素原"
    values = index_values(_observation(3, other))
    assert next(v.value_norm for v in values if v.param == "code") == "降钙素原"
    assert values == _fresh(_observation(3, other))


def test_the_zone_is_part_of_the_key() -> None:
    iv._MEMO.clear()
    east8 = timezone(timedelta(hours=8))
    utc = UTC
    at8 = [v for v in index_values(_observation(1), east8) if v.param == "date"]
    at0 = [v for v in index_values(_observation(1), utc) if v.param == "date"]
    assert at8[0].date_start != at0[0].date_start
    assert at0 == [v for v in _fresh(_observation(1), utc) if v.param == "date"]


class _Text(str):
    """A str subclass: orjson would write it as the text it holds."""


@pytest.mark.parametrize(
    "node",
    [
        {"coding": [{"code": _Text("x")}]},
        {"coding": [{"code": "x", "display": float("nan")}]},
        {"coding": [{"code": "x", "display": None}]},
    ],
)
def test_a_node_that_is_not_plain_json_is_not_memoised(node: dict[str, Any]) -> None:
    assert iv._text_of(node) is None
    iv._MEMO.clear()
    index_values(_observation(1, node))
    assert not any(key[-1] is None for key in iv._MEMO)
    assert not any(key[0] is iv._tokens and key[1] == "code" for key in iv._MEMO)


def test_one_and_one_point_zero_and_true_are_told_apart() -> None:
    texts = {iv._text_of({"coding": [{"code": c}]}) for c in (1, 1.0, True, "1")}
    assert len(texts) == 4


def test_the_memo_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(iv, "_MEMO_MAX", 8)
    iv._MEMO.clear()
    for n in range(40):
        resource = _observation(n, when=f"2026-11-{1 + n % 28:02d}T13:05:{n:02d}")
        assert index_values(resource) == _fresh(resource)
        index_values(resource)
        assert len(iv._MEMO) <= 8


def _patient_key_by_reading(resource: dict[str, Any]) -> str | None:
    """``patient_key`` as it read the patient parameters before (each path's elements)."""
    search = RESOURCES.get(resource.get("resourceType") or "")
    if resource.get("resourceType") == "Patient":
        return patient_key(resource)
    if search is None:
        return None
    for name in search.patient_params:
        param = search.params[name]
        for path in param.paths:
            for node in iv.elements(resource, path):
                value = iv._reference(param.name, param.targets, param.narrow, node)
                if value and value.reference and value.reference.startswith("Patient/"):
                    return value.reference
    return None


@pytest.mark.parametrize(
    "resource",
    [
        {"resourceType": "Observation", "subject": {"reference": "Patient/p1"}},
        {"resourceType": "Observation", "subject": {"reference": "Group/g1"}},
        {"resourceType": "Observation", "subject": "Patient/p2"},
        {"resourceType": "Observation", "subject": {"reference": "http://x.cn/fhir/Patient/p3"}},
        {"resourceType": "Observation", "subject": {"identifier": {"value": "1"}}},
        {"resourceType": "Observation", "subject": {"reference": "#c1"}},
        {"resourceType": "Observation", "subject": {"reference": 7}},
        {"resourceType": "Observation"},
        {
            "resourceType": "Provenance",
            "target": [{"reference": "Observation/o1"}, {"reference": "Patient/p4"}],
        },
        {"resourceType": "Task", "for": {"reference": "Patient/p5"}},
        {"resourceType": "Coverage", "beneficiary": {"reference": "Patient/p6/_history/2"}},
        {"resourceType": "Patient", "id": "p7"},
        {"resourceType": "Organization", "id": "o1"},
        {"resourceType": "Unknown"},
    ],
)
def test_patient_key_from_compiled_paths_reads_as_before(resource: dict[str, Any]) -> None:
    assert patient_key(resource) == _patient_key_by_reading(resource)


# --- decision 0143: only the paths a resource has, bare References memoised, dedupe -------


def _plain_index_values(resource: dict[str, Any], zone: Any = iv.DEFAULT_ZONE) -> list[IndexValue]:
    """``index_values`` as it was before decision 0143: every parameter of the plan in
    order, every path looked up, no memo, duplicates removed by the values' own hash."""
    search = RESOURCES.get(resource.get("resourceType", ""))
    if search is None:
        return []
    found: dict[str, list[IndexValue]] = {}
    plan = iv._plan(search.type)
    for name, paths, convert, _ in plan:
        values: list[IndexValue] = []
        for first, steps in paths:
            if first not in resource:
                continue
            if steps is None:
                child = resource[first]
                nodes = child if isinstance(child, list) else (child,)
            else:
                nodes = iv._walk(resource, steps)
            for node in nodes:
                convert(name, node, zone, values)
        found[name] = list(dict.fromkeys(values))
    out: list[IndexValue] = []
    for name, _, _, shared in plan:
        values = found[name]
        if shared and values:
            held = {iv._unnamed(v, inner) for inner in shared for v in found.get(inner, ())}
            out.extend(v for v in values if iv._unnamed(v, name) not in held)
        else:
            out.extend(values)
    return out


_REPORT = {
    "resourceType": "DiagnosticReport",
    "id": "r1",
    "identifier": [
        {"system": "https://h.example.cn/lab-report", "value": "A1"},
        {"system": "https://h.example.cn/lab-report", "value": "A1"},  # the same twice
        {
            "type": {
                "coding": [
                    {"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "PLAC"}
                ]
            },
            "system": "https://h.example.cn/lab-order",
            "value": "B2",
        },
    ],
    "status": "final",
    "code": _CODE,
    "subject": {"reference": "Patient/p1"},
    "performer": [
        {"reference": "Organization/o1"},
        {"reference": "Organization/o1"},  # a duplicate
        {"reference": "Practitioner/d1", "display": "张医生"},  # not bare: not memoised
        {"display": "检验科"},  # a display only
    ],
    "specimen": [{"reference": "Specimen/s1"}],
    "result": [{"reference": f"Observation/o{n}"} for n in range(12)],
    "effectiveDateTime": "2026-11-24T13:05:00+08:00",
}


@pytest.mark.parametrize(
    "resource",
    [
        _REPORT,
        _observation(1),
        {**_observation(2), "subject": "Patient/p9", "performer": [{"reference": "Patient/p9"}]},
        {
            "resourceType": "Provenance",
            "id": "v1",
            "target": _REPORT["result"],
            "recorded": "2026-11-24T13:05:00+08:00",
            "agent": [{"who": {"reference": "Organization/o1"}}],
        },
        {"resourceType": "Observation", "id": "o", "subject": {"reference": "Group/g1"}},
    ],
)
def test_index_values_are_those_of_every_path_looked_up(resource: dict[str, Any]) -> None:
    """The same values in the same order as a walk of every parameter and path without a
    memo (the plan's order kept, duplicates removed first-seen), fresh and memoised."""
    iv._MEMO.clear()
    iv._REFERENCE_MEMO.clear()
    expected = _plain_index_values(resource)
    assert [_fields(v) for v in index_values(resource)] == [_fields(v) for v in expected]
    again = index_values(copy.deepcopy(resource))  # from the memos
    assert [_fields(v) for v in again] == [_fields(v) for v in expected]


def test_a_bare_reference_is_memoised_by_parameter() -> None:
    """A Reference with nothing but ``reference`` is memoised under its parameter's
    converter: a narrow parameter (``patient``) still gives nothing for an Organization."""
    iv._REFERENCE_MEMO.clear()
    first = index_values({**_observation(1), "performer": [{"reference": "Patient/p1"}]})
    assert any(key[2] == "Patient/p1" for key in iv._REFERENCE_MEMO)
    second = index_values({**_observation(2), "subject": {"reference": "Organization/x"}})
    assert not [v for v in second if v.param == "patient"]
    assert [v for v in first if v.param == "performer"] == [
        IndexValue("performer", "reference", reference="Patient/p1")
    ]


def test_the_reference_memo_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(iv, "_MEMO_MAX", 8)
    iv._REFERENCE_MEMO.clear()
    for n in range(30):
        resource = {**_REPORT, "result": [{"reference": f"Observation/x{n}-{k}"} for k in range(3)]}
        assert [_fields(v) for v in index_values(resource)] == [
            _fields(v) for v in _plain_index_values(resource)
        ]
        assert len(iv._REFERENCE_MEMO) <= 8

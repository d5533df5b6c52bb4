"""Decision 0153: ``index_values`` reads a plan per resource type and element names
(``_SHAPES``), each parameter's values in a list of its own, the values other parameters'
rows hold filtered by place; ``_index_tuples`` names a message's resources by key while it
builds the rows. The same values and rows as the plain walk of every path, whatever the
elements' order or the shapes met before; the shapes are bounded."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from adapter.fhir import index_values as iv
from adapter.fhir.index_values import IndexValue, index_values
from adapter.store.resources import _index_tuples, _named_by_key
from tests.unit.test_index_values_memo import _REPORT, _fields, _observation, _plain_index_values

_TYPED_CODING = {"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "FILL"}


def _combo() -> dict[str, Any]:
    """An Observation whose code, component codes and subject share rows with others."""
    code = {"coding": [{"system": "http://loinc.org", "code": "85354-9"}], "text": "血压"}
    return {
        "resourceType": "Observation",
        "id": "bp",
        "identifier": [
            {"type": {"coding": [_TYPED_CODING]}, "system": "https://h.example.cn/r", "value": "1"},
            {"type": {"coding": [_TYPED_CODING]}, "system": "https://h.example.cn/r", "value": "1"},
        ],
        "status": "final",
        "code": code,
        "component": [
            {"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]}},
            {"code": copy.deepcopy(code)},  # the code again: kept under ``code``
        ],
        "subject": {"reference": "Patient/p1"},
        "performer": [{"reference": "Patient/p1"}, {"reference": "Organization/o1"}],
    }


def _reordered(resource: dict[str, Any]) -> dict[str, Any]:
    """The same elements in the reverse order (another shape of the same type)."""
    return dict(reversed(list(resource.items())))


_RESOURCES = [
    _REPORT,
    _reordered(_REPORT),
    {key: value for key, value in _REPORT.items() if key != "subject"},  # no inner parameter
    _observation(1),
    _combo(),
    _reordered(_combo()),
    {**_combo(), "subject": "Patient/p2"},  # a bare string reference
    {
        "resourceType": "Provenance",
        "id": "v1",
        "target": [{"reference": "Patient/p1"}, {"reference": "Observation/o1/_history/1"}],
        "recorded": "2026-11-24T13:05:00+08:00",
        "agent": [{"who": {"reference": "Organization/o1"}}],
    },
    {"resourceType": "Observation", "id": "x"},  # no parameter's element
    {"resourceType": "Unknown", "id": "u", "subject": {"reference": "Patient/p1"}},
    {"id": "no-type"},
]


@pytest.mark.parametrize("resource", _RESOURCES)
def test_the_values_of_every_shape_are_those_of_the_plain_walk(resource: dict[str, Any]) -> None:
    iv._SHAPES.clear()
    iv._MEMO.clear()
    iv._REFERENCE_MEMO.clear()
    expected = [_fields(v) for v in _plain_index_values(resource)]
    assert [_fields(v) for v in index_values(resource)] == expected
    assert [_fields(v) for v in index_values(copy.deepcopy(resource))] == expected  # kept shape


def test_shapes_met_in_turn_keep_their_own_plans() -> None:
    """Every resource after every other: a shape's plan is never another's."""
    iv._SHAPES.clear()
    for _ in range(2):
        for resource in _RESOURCES:
            expected = [_fields(v) for v in _plain_index_values(resource)]
            assert [_fields(v) for v in index_values(resource)] == expected
    assert len(iv._SHAPES) == len({(r.get("resourceType", ""), *r) for r in _RESOURCES})


def test_a_value_held_by_an_inner_parameter_is_left_to_it() -> None:
    values = index_values(_combo())
    subject = [v for v in values if v.param == "subject"]
    patient = [v for v in values if v.param == "patient"]
    assert not subject and [v.reference for v in patient] == ["Patient/p1"]
    assert not [v for v in values if v.param == "combo-code"]  # held by the two others
    assert [v.code for v in values if v.param == "code"] == ["85354-9", None]  # and the text
    identifiers = [v for v in values if v.param.startswith("identifier")]
    assert [v.param for v in identifiers] == ["identifier", "identifier:of-type"]  # deduped


def test_the_shapes_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(iv, "_SHAPES_MAX", 4)
    iv._SHAPES.clear()
    for n in range(20):
        resource = {**_observation(n), f"extra{n}": True}  # a new shape each time
        assert [_fields(v) for v in index_values(resource)] == [
            _fields(v) for v in _plain_index_values(resource)
        ]
        assert len(iv._SHAPES) <= 4


@pytest.mark.parametrize("resource", _RESOURCES[:8])
@pytest.mark.parametrize("named", [None, {}, {"Patient/p1": 41, "Observation/o1": 42}])
def test_rows_named_while_built_are_those_named_after(
    resource: dict[str, Any], named: dict[str, int] | None
) -> None:
    """A reference to one of the message's resources as its key, an identifier's type on
    its row: as ``_named_by_key`` of the rows built without names gives them."""
    rtype = resource["resourceType"]
    values = index_values(resource)
    expected = _index_tuples(rtype, 7, [IndexValue(**_fields(v)) for v in values])
    if named:
        expected = _named_by_key(expected, named)
    assert _index_tuples(rtype, 7, values, named) == expected
    if named and rtype == "Observation":
        assert any(41 in row for row in expected)

"""Decision 0132: the resource check's walk takes exact dicts, lists and texts at once and a
list's items without a call of its own: its issues (severity, code, text, expression, in
order) are those of the walk before it (``reference_walk`` below, 0126's), for values of
every type the walk meets, subclasses of ``dict``, ``list`` and ``str`` included, at every
kind of place (a resource's top, nested dicts, dicts and lists in lists, contained
resources)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from adapter.errors import Issue
from adapter.fhir.primitives import PLAIN_MAX, check_primitive, is_plain_string
from adapter.pipeline import checks

# -- the check -------------------------------------------------------------------------------


def reference_walk(
    node: Any, path: Any, prefix: str, issues: list[Issue], top: bool = False
) -> None:
    """The walk as decision 0126 left it (without its memo of passed values, which only
    spares a check that passed: a pure function of the type and the text)."""
    if isinstance(node, dict):
        top = top or "resourceType" in node
        for key, value in node.items():
            if isinstance(value, str):
                kind = checks._type_of(key, top)
                if kind == "string" and is_plain_string(value):
                    continue
                problem = check_primitive(kind, value)
                if problem:
                    where = f"{checks._path_text(path)}.{key}"
                    issues.append(Issue("error", "value", f"{prefix}: {problem}", expression=where))
            elif isinstance(value, dict | list):
                reference_walk(value, (path, key), prefix, issues)
            elif isinstance(value, float) and not math.isfinite(value):
                where = f"{checks._path_text(path)}.{key}"
                issues.append(
                    Issue("error", "value", f"{prefix}: not a finite number", expression=where)
                )
            elif isinstance(value, int) and not checks.INT64_MIN <= value <= checks.INT64_MAX:
                where = f"{checks._path_text(path)}.{key}"
                issues.append(
                    Issue("error", "value", f"{prefix}: integer beyond 64 bits", expression=where)
                )
    elif isinstance(node, list):
        for index, item in enumerate(node):
            if isinstance(item, dict | list):
                reference_walk(item, (path, index, None), prefix, issues)


class Text(str):
    pass


class Record(dict):  # type: ignore[type-arg]
    pass


class Items(list):  # type: ignore[type-arg]
    pass


BAD_VALUES: list[Any] = [
    "fine", "", " ", "\u3000", "a\x00b", "x" * (PLAIN_MAX + 1), Text("fine"), Text(" "),
    Text("a\x01"), "2024-13-01", "2024-01-02", "2024-01-02T10:00:00", "bad id!", 1.5,
    math.nan, math.inf, 2**64, -(2**63), True, None, 7, [], {},
]  # fmt: skip

KEYS = ["status", "value", "effectiveDateTime", "issued", "id", "system", "birthDate"]


def shapes(value: Any) -> list[Any]:
    """``value`` at every kind of place the walk reaches: a resource's top, a nested dict, a
    dict in a list, a list in a list, a contained resource, a subclass of dict and list."""
    return [
        {key: value for key in KEYS},
        {"code": {key: value for key in KEYS}},
        {"coding": [{key: value for key in KEYS}, value, [value, {"code": value}]]},
        {"contained": [{"resourceType": "Patient", **{key: value for key in KEYS}}]},
        {"extension": Items([Record({key: value for key in KEYS}), Items([{"id": value}])])},
        {"valueQuantity": Record({"value": value, "code": Record({"id": value})})},
        {"note": [[[{"text": value}]], value, Text("x")]},
        {"coding": [Record({key: value for key in KEYS}), Items([{"id": value}]), 1]},
    ]


def walked(walk: Any, resource: dict[str, Any]) -> list[tuple[Any, ...]]:
    issues: list[Issue] = []
    walk(resource, resource.get("resourceType", ""), "Observation/o", issues, top=True)
    return [(i.severity, i.code, i.diagnostics, i.expression) for i in issues]


@pytest.mark.parametrize("value", BAD_VALUES, ids=repr)
def test_the_walk_finds_what_the_walk_before_it_found(value: Any) -> None:
    for shape in shapes(value):
        for resource in ({"resourceType": "Observation", "id": "o", **shape}, Record(shape)):
            want = walked(reference_walk, resource)
            assert walked(checks._walk, resource) == want, resource
            assert walked(checks._walk, resource) == want, resource  # memo of passed values


def test_the_walk_of_what_is_not_a_dict_or_list_finds_nothing() -> None:
    for value in ("x", 1, None, Text("\x00")):
        issues: list[Issue] = []
        checks._walk(value, "Observation", "Observation/o", issues, top=True)
        assert issues == []


def test_check_resources_locates_issues_as_before() -> None:
    resource = {
        "resourceType": "Observation",
        "id": "o",
        "code": {"coding": [{"system": " ", "code": "a b"}, [{"display": "\x07"}]]},
        "valueQuantity": {"value": math.nan},
    }
    got = checks.check_resources([resource], {("Observation", "o"): "OBX[2]"})
    want: list[Issue] = []
    reference_walk(resource, "Observation", "Observation/o", want, top=True)
    assert [(i.diagnostics, i.expression, i.location) for i in got] == [
        (i.diagnostics, i.expression, "OBX[2]") for i in want
    ]
    assert [i.expression for i in got] == [
        "Observation.code.coding[0].system",  # a code may hold one space inside: "a b" may
        "Observation.code.coding[1][0].display",
        "Observation.valueQuantity.value",
    ]

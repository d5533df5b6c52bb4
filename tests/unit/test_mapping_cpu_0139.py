"""Decision 0139: what grouping asks of a message structure found once per structure
(``GroupSpec.first_names``, the trailing plan of ``standard_order``), ``first()``'s
alternatives not taken read in one call, and populated fields counted in C. Each gives
what the code before gave."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from adapter.hl7v2 import Segment
from adapter.mapping import hl7v2_paths as v2
from tests.unit.mapping_support import hl7


def structure(trailing: bool, first_required: str = "OBR!") -> v2.GroupSpec:
    order: dict[str, Any] = {
        "group": "ORDER_OBSERVATION",
        "repeat": True,
        "required": True,
        "items": [
            "ORC",
            first_required,
            "NTE*",
            {"group": "OBSERVATION", "repeat": True, "items": ["OBX!", "NTE*"]},
        ],
    }
    if trailing:
        order["trailing"] = {"ORC": ["ORC-2=OBR-2"]}
    return v2.compile_structure(["MSH!", {"group": "PATIENT", "items": ["PID!"]}, order])


def first_names_as_before(spec: v2.GroupSpec) -> set[str]:
    """``first_names`` as it was computed per call before decision 0139."""
    names: set[str] = set()
    for child in spec.children:
        names |= {child.name} if isinstance(child, v2.SegmentSpec) else first_names_as_before(child)
        if child.required:
            break
    return names


def grouped(spec: v2.GroupSpec, *segments: str) -> tuple[Any, ...]:
    message = hl7(*segments)
    ordered, notes = v2.standard_order(message, spec)
    root, unplaced = v2.build_groups(message, spec, ordered)
    shape = [(g.name, [s.location() for s in g.segments]) for g in root.walk()]
    return shape, [(n.severity, n.location) for n in notes], [s.name for s in unplaced]


TRAILING_ORC = ("PID|1||P1", "OBR|1|A1", "OBX|1|NM|GLU||5", "ORC|RE|A1")


def test_first_names_are_those_computed_per_call() -> None:
    spec = structure(trailing=True)
    for group in spec.walk_specs():
        assert group.first_names() == first_names_as_before(group)
        assert group.first_names() is group.first_names()  # found once


def test_a_structure_loaded_again_is_read_with_its_own_plan() -> None:
    # two structures never share what was found of one: the same message grouped by a
    # structure with ``trailing:`` and one without, in turn, each as it says
    with_trailing, without = structure(trailing=True), structure(trailing=False)
    for _ in range(2):
        moved = grouped(with_trailing, *TRAILING_ORC)
        as_written = grouped(without, *TRAILING_ORC)
        assert ("information", "ORC[1]") in moved[1]
        assert as_written[1] == []
        assert moved[0] != as_written[0]
    # a structure compiled again from changed data (a reloaded mapping) groups by the change
    changed = structure(trailing=False, first_required="OBR")  # OBR no longer required
    order, before = changed.children[2], with_trailing.children[2]
    assert isinstance(order, v2.GroupSpec) and isinstance(before, v2.GroupSpec)
    assert order.first_names() == first_names_as_before(order) != before.first_names()
    assert grouped(changed, *TRAILING_ORC)[1] == []


def test_standard_order_plan_matches_the_walk() -> None:
    spec = structure(trailing=True)
    plan = v2._trailing_plan(spec)
    assert plan is v2._trailing_plan(spec)
    assert [(p[0].name, p[1], p[2].name, p[4]) for p in plan] == [
        ("ORDER_OBSERVATION", "OBR", "ORC", True)
    ]
    assert plan[0][3] == frozenset(spec.children[2].subtree_names())  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "line",
    [
        "OBX|1|NM|GLU^Glucose^L||5.6|mmol/L|||||F",
        "OBX|1|ST||||",
        "OBX|1|CWE|A~B|^x^|\\F\\|||",
        "OBX",
        "OBX||||||||||||||||||||||||last",
    ],
)
def test_populated_fields_and_filled_components_as_the_loops_gave(line: str) -> None:
    segment: Segment = hl7(line).segments[1]
    fields = segment._f
    assert segment.populated_fields() == [i for i, v in enumerate(fields) if i and v]
    for f in range(0, len(fields) + 2):
        value = segment.raw(f)
        if value and segment._flat:
            expected = [c for c, part in enumerate(value.split(segment._cs), 1) if part]
            assert segment.filled_components(f) == expected


@pytest.mark.parametrize("chosen", ["", "5.6", "other"])
def test_alternatives_in_one_call_read_what_one_call_each_read(chosen: str) -> None:
    message = hl7("OBR|1|A1||||20261120|20261120|", "OBX|1|NM|GLU||5.6|mmol/L||||||5.6")
    spec = v2.compile_structure(["MSH", "OBR", "OBX*"])
    paths = tuple(
        v2.compile_path(t) for t in ("OBX-5", "OBX-13", "OBR-7", "OBR-8", "ZZZ-1", "OBX-6.2")
    )
    for order in itertools.permutations(paths, 3):
        one, each = v2.ReadTracker(), v2.ReadTracker()
        root_one, _ = v2.build_groups(message, spec)
        root_each, _ = v2.build_groups(message, spec)
        v2.read_path(one, paths[0], root_one)  # a path read already is skipped
        v2.read_path(each, paths[0], root_each)
        v2.read_alternatives(one, order, root_one, chosen)
        for path in order:
            v2.read_unless_other(each, path, root_each, chosen)
        assert (one.segments, one.fields, one.parts) == (each.segments, each.fields, each.parts)
        assert sorted(one.resolved) == sorted(each.resolved)

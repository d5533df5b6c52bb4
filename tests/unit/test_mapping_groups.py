"""Sorting HL7 v2 segments into the groups of a message structure (hl7v2_paths.build_groups)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from adapter.mapping import hl7v2_paths as v2
from tests.unit.mapping_support import MESSAGE, errors, hl7, load, mapping_root, translate

ORU = v2.compile_structure(
    yaml.safe_load(
        (
            Path(__file__).resolve().parents[2] / "mappings/_shared/hl7v2/messages/oru_r01.yaml"
        ).read_text(encoding="utf-8")
    )["structure"]
)


def shape(group: v2.Group) -> list:
    """A group as nested lists: segment names (with occurrence) and [group name, ...]."""
    items: list[tuple[int, object]] = [
        (s.index, f"{s.name}[{s.occurrence}]") for s in group.segments
    ]
    for sub in group.groups:
        first = sub.first_segment
        items.append((first.index if first else -1, [sub.name, *shape(sub)]))
    return [item for _, item in sorted(items, key=lambda pair: pair[0])]


def groups(*segments: str, structure: v2.GroupSpec = ORU) -> tuple[list, list[str]]:
    root, unplaced = v2.build_groups(hl7(*segments), structure)
    return shape(root), [f"{s.name}[{s.occurrence}]" for s in unplaced]


def test_several_patient_results_and_orders() -> None:
    tree, unplaced = groups(
        "PID|1||P1",
        "ORC|RE|O1",
        "OBR|1|O1|R1",
        "OBX|1|NM|A||1",
        "OBX|2|NM|B||2",
        "OBR|2|O2|R2",
        "OBX|1|NM|C||3",
        "PID|2||P2",
        "OBR|1|O3|R3",
        "OBX|1|NM|D||4",
    )
    assert unplaced == []
    assert tree == [
        "MSH[1]",
        [
            "PATIENT_RESULT",
            "PID[1]",
            [
                "ORDER_OBSERVATION",
                "ORC[1]",
                "OBR[1]",
                ["OBSERVATION", "OBX[1]"],
                ["OBSERVATION", "OBX[2]"],
            ],
            ["ORDER_OBSERVATION", "OBR[2]", ["OBSERVATION", "OBX[3]"]],
        ],
        ["PATIENT_RESULT", "PID[2]", ["ORDER_OBSERVATION", "OBR[3]", ["OBSERVATION", "OBX[4]"]]],
    ]


def test_orc_before_each_obr_starts_a_new_order() -> None:
    tree, _ = groups(
        "PID|1||P1",
        "ORC|RE|O1",
        "OBR|1|O1",
        "OBX|1|NM|A||1",
        "ORC|RE|O2",
        "OBR|2|O2",
        "OBX|1|NM|B||1",
    )
    patient = tree[1]
    assert [g[:3] for g in patient[2:]] == [
        ["ORDER_OBSERVATION", "ORC[1]", "OBR[1]"],
        ["ORDER_OBSERVATION", "ORC[2]", "OBR[2]"],
    ]


def test_notes_go_into_the_group_of_the_segment_before_them() -> None:
    tree, _ = groups(
        "PID|1||P1",
        "NTE|1||on the patient",
        "OBR|1||R1",
        "NTE|1||on the order",
        "OBX|1|NM|A||1",
        "NTE|1||on A",
        "NTE|2||on A too",
        "OBX|2|NM|B||2",
    )
    assert tree[1] == [
        "PATIENT_RESULT",
        "PID[1]",
        "NTE[1]",
        [
            "ORDER_OBSERVATION",
            "OBR[1]",
            "NTE[2]",
            ["OBSERVATION", "OBX[1]", "NTE[3]", "NTE[4]"],
            ["OBSERVATION", "OBX[2]"],
        ],
    ]


def test_specimen_groups_hold_their_own_obx() -> None:
    tree, unplaced = groups(
        "PID|1||P1",
        "OBR|1||R1",
        "OBX|1|NM|A||1",
        "SPM|1|S1||SER",
        "OBX|2|NM|TEMP||4",
        "SPM|2|S2||UR",
        "OBX|3|NM|VOL||20",
        "OBX|4|NM|PH||6",
    )
    assert unplaced == []
    order = tree[1][2]
    assert order == [
        "ORDER_OBSERVATION",
        "OBR[1]",
        ["OBSERVATION", "OBX[1]"],
        ["SPECIMEN", "SPM[1]", "OBX[2]"],
        ["SPECIMEN", "SPM[2]", "OBX[3]", "OBX[4]"],
    ]


def test_unknown_z_segments_are_unplaced_and_do_not_move_the_position() -> None:
    tree, unplaced = groups(
        "PID|1||P1", "ZPI|1|vendor", "OBR|1||R1", "OBX|1|NM|A||1", "ZRS|x", "NTE|1||note on A"
    )
    assert unplaced == ["ZPI[1]", "ZRS[1]"]
    assert tree[1][2][2] == ["OBSERVATION", "OBX[1]", "NTE[1]"]


def test_a_segment_out_of_order_is_unplaced() -> None:
    """PID after the results of the same patient cannot go back: it starts a new
    PATIENT_RESULT; a second PV1 in one patient fits nowhere."""
    tree, unplaced = groups("PID|1||P1", "PV1|1|O", "PV1|2|O", "OBR|1||R1", "OBX|1|NM|A||1")
    assert unplaced == ["PV1[2]"]
    assert tree[1][:3] == ["PATIENT_RESULT", "PID[1]", "PV1[1]"]


def test_a_non_repeating_group_is_not_started_twice() -> None:
    structure = v2.compile_structure(["MSH!", {"group": "VISIT", "items": ["PV1!", "PV2"]}, "OBX*"])
    tree, unplaced = groups("PV1|1", "PV2|1", "PV1|2", "OBX|1", structure=structure)
    assert tree == ["MSH[1]", ["VISIT", "PV1[1]", "PV2[1]"], "OBX[1]"]
    assert unplaced == ["PV1[2]"]


def test_missing_required_segment_is_reported() -> None:
    root, _ = v2.build_groups(hl7("PID|1||P1", "ORC|RE|O1", "OBX|1|NM|A||1"), ORU)
    # ORC alone begins an ORDER_OBSERVATION; its OBR is missing
    assert [(g.name, name) for g, name in v2.missing_required(root)] == [
        ("ORDER_OBSERVATION", "OBR")
    ]


def test_missing_required_group_is_reported() -> None:
    """Results without their OBR cannot be placed: the ORDER_OBSERVATION that PATIENT_RESULT
    requires is missing, which is an error, not just an unread segment."""
    root, unplaced = v2.build_groups(hl7("PID|1||P1", "OBX|1|NM|A||1"), ORU)
    assert [s.name for s in unplaced] == ["OBX"]
    assert [(g.name, name) for g, name in v2.missing_required(root)] == [
        ("PATIENT_RESULT", "ORDER_OBSERVATION")
    ]
    root, _ = v2.build_groups(hl7(), ORU)
    assert [(g.name, name) for g, name in v2.missing_required(root)] == [
        ("MESSAGE", "PATIENT_RESULT")
    ]


def test_missing_required_parts_stop_the_translation(tmp_path: Path) -> None:
    root = mapping_root(tmp_path, {"_shared/hl7v2/messages/oru.yaml": MESSAGE}, body="code: =OBX-3")
    translation = translate(load(root), hl7("PID|1||P1", "ORC|RE|O1", "OBX|1|NM|A||1"))
    (error,) = errors(translation.issues)
    assert error.code == "required" and error.location == "ORC[1]"
    assert "OBR" in error.diagnostics
    assert translation.resources == []
    translation = translate(load(root), hl7("PID|1||P1", "OBX|1|NM|A||1"))
    (error,) = errors(translation.issues)
    assert error.location == "PID[1]" and "ORDER_OBSERVATION" in error.diagnostics


@pytest.mark.parametrize(
    ("items", "words"),
    [
        (["MSH!", "obx"], "not a segment"),
        (["MSH!", "OBX?!"], "not a segment"),
        (["MSH!", {"items": ["OBX"]}], "group"),
    ],
)
def test_bad_structure(items: list, words: str) -> None:
    with pytest.raises((ValueError, KeyError)) as caught:
        v2.compile_structure(items)
    assert words in str(caught.value)


def test_structure_flags() -> None:
    spec = v2.compile_structure(["MSH!", "NTE*", "PID+", "PV1?", "PV2"])
    flags = {c.name: (c.repeat, c.required) for c in spec.children}  # type: ignore[union-attr]
    assert flags == {
        "MSH": (False, True),
        "NTE": (True, False),
        "PID": (True, True),
        "PV1": (False, False),
        "PV2": (False, False),
    }


def test_paths_reach_enclosing_groups() -> None:
    root, _ = v2.build_groups(hl7("PID|1||P1", "OBR|1||R1", "OBX|1|NM|A||1"), ORU)
    observation = root.groups[0].groups[0].groups[0]
    tracker = v2.ReadTracker()
    found = v2.resolve(v2.compile_path("PID-3"), observation, tracker)
    assert isinstance(found, v2.Node) and found.text == "P1"
    assert found.location == "PID[1]-3"
    assert v2.resolve(v2.compile_path("SPM-2"), observation, tracker) is None
    assert (1, 3) in tracker.fields  # PID is segment index 1

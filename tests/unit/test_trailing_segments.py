"""An ORC written after its OBR, or after the OBR's results (``trailing:`` in a message
structure, hl7v2_paths.standard_order, decision 0041): read with the OBR it follows, a note
at its place; never paired with the wrong OBR (an error instead)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from adapter.mapping import hl7v2_paths as v2
from tests.unit.mapping_support import hl7

MESSAGES = Path(__file__).resolve().parents[2] / "mappings/_shared/hl7v2/messages"


def structure(name: str) -> v2.GroupSpec:
    data = yaml.safe_load((MESSAGES / name).read_text(encoding="utf-8"))
    return v2.compile_structure(data["structure"])


ORU = structure("oru_r01.yaml")
R21 = structure("oul_r21.yaml")
R22 = structure("oul_r22.yaml")
R24 = structure("oul_r24.yaml")


def pairing(
    spec: v2.GroupSpec, *segments: str, group: str = "ORDER_OBSERVATION"
) -> tuple[dict[str, str], list[tuple[str, str]], list[str]]:
    """{ORC[n]: OBR[m] of the same group}, the notes (severity, location), unplaced."""
    message = hl7(*segments)
    ordered, notes = v2.standard_order(message, spec)
    root, unplaced = v2.build_groups(message, spec, ordered)
    pairs: dict[str, str] = {}
    for found in root.walk():
        if found.name != group:
            continue
        orc = [s for s in found.segments if s.name == "ORC"]
        obr = [s for s in found.segments if s.name == "OBR"]
        for s in orc:
            pairs[f"ORC[{s.occurrence}]"] = f"OBR[{obr[0].occurrence}]" if obr else "none"
    return (
        pairs,
        [(n.severity, n.location) for n in notes],
        [f"{s.name}[{s.occurrence}]" for s in unplaced],
    )


def test_standard_order_is_read_as_written_without_a_note() -> None:
    message = hl7(
        "PID|1||P1", "ORC|RE|O1|F1", "OBR|1|O1|F1", "OBX|1|NM|A||1",
        "ORC|RE|O2|F2", "OBR|2|O2|F2", "OBX|1|NM|B||2",
    )  # fmt: skip
    ordered, notes = v2.standard_order(message, ORU)
    assert ordered is None and notes == []


@pytest.mark.parametrize("spec", [ORU, R21], ids=["ORU^R01", "OUL^R21"])
def test_orc_after_the_results_belongs_to_the_obr_before_it(spec: v2.GroupSpec) -> None:
    pairs, notes, unplaced = pairing(
        spec,
        "PID|1||P1",
        "OBR|1|O1|F1", "OBX|1|NM|A||1", "NTE|1|L|note", "ORC|RE|O1|F1",
        "OBR|2|O2|F2", "OBX|1|NM|B||2", "ORC|RE|O2|F2",
    )  # fmt: skip
    assert pairs == {"ORC[1]": "OBR[1]", "ORC[2]": "OBR[2]"}
    assert notes == [("information", "ORC[1]"), ("information", "ORC[2]")]
    assert unplaced == []


def test_orc_right_after_its_obr_without_order_numbers() -> None:
    """By the message's style: an OBR before any ORC, an ORC after the last OBR."""
    pairs, notes, _ = pairing(
        R21,
        "PID|1||P1",
        "OBR|1", "ORC|RE", "OBX|1|NM|A||1",
        "OBR|2", "ORC|RE", "OBX|1|NM|B||2",
    )  # fmt: skip
    assert pairs == {"ORC[1]": "OBR[1]", "ORC[2]": "OBR[2]"}
    assert [severity for severity, _ in notes] == ["information", "information"]


def test_an_orc_leading_the_next_obr_stays_with_it() -> None:
    """OBR 1 without an ORC, then ORC 2 before OBR 2 (the standard order): its numbers name
    OBR 2, so it is not taken for a trailing ORC of OBR 1."""
    pairs, notes, _ = pairing(
        ORU,
        "PID|1||P1",
        "OBR|1|O1|F1", "OBX|1|NM|A||1",
        "ORC|RE|O2|F2", "OBR|2|O2|F2", "OBX|1|NM|B||2",
    )  # fmt: skip
    assert pairs == {"ORC[1]": "OBR[2]"}
    assert notes == []


def test_order_numbers_decide_in_a_message_of_both_styles() -> None:
    pairs, notes, _ = pairing(
        ORU,
        "PID|1||P1",
        "OBR|1|O1|F1", "OBX|1|NM|A||1", "ORC|RE|O1|F1",
        "OBR|2|O2|F2", "OBX|1|NM|B||2",
    )  # fmt: skip
    assert pairs == {"ORC[1]": "OBR[1]"}
    assert notes == [("information", "ORC[1]")]


def test_a_second_orc_after_one_obr_is_an_error_not_a_guess() -> None:
    _, notes, _ = pairing(
        R21,
        "PID|1||P1",
        "OBR|1|O1|F1", "ORC|RE|O1|F1", "OBX|1|NM|A||1", "ORC|RE|O1|F1",
        "OBR|2|O2|F2", "OBX|1|NM|B||2", "ORC|RE|O2|F2",
    )  # fmt: skip
    assert ("error", "ORC[2]") in notes


def test_an_orc_whose_numbers_name_no_neighbour_is_an_error() -> None:
    _, notes, _ = pairing(
        R21,
        "PID|1||P1",
        "OBR|1|O1|F1", "OBX|1|NM|A||1", "ORC|RE|O9|F9",
        "OBR|2|O2|F2", "OBX|1|NM|B||2", "ORC|RE|O2|F2",
    )  # fmt: skip
    assert ("error", "ORC[1]") in notes


def test_never_across_a_patient() -> None:
    """An ORC after the next patient's PID is not the previous patient's order's."""
    pairs, notes, _ = pairing(
        ORU,
        "PID|1||P1", "OBR|1|O1|F1", "OBX|1|NM|A||1",
        "PID|2||P2", "ORC|RE", "OBR|1|O2|F2", "OBX|1|NM|B||2",
    )  # fmt: skip
    assert pairs == {"ORC[1]": "OBR[2]"}
    assert notes == []


@pytest.mark.parametrize("spec", [R22, R24], ids=["OUL^R22", "OUL^R24"])
def test_r22_r24_orc_after_the_results_moves_back_to_its_obr(spec: v2.GroupSpec) -> None:
    lead = ["SPM|1|S1"] if spec is R22 else []
    pairs, notes, unplaced = pairing(
        spec,
        "PID|1||P1", *lead,
        "OBR|1|O1|F1", "OBX|1|NM|A||1", "ORC|RE|O1|F1",
        group="ORDER",
    )  # fmt: skip
    assert pairs == {"ORC[1]": "OBR[1]"}
    assert notes == [("information", "ORC[1]")]
    assert unplaced == []


def test_r22_orc_right_after_its_obr_is_the_standard_order() -> None:
    message = hl7("PID|1||P1", "SPM|1|S1", "OBR|1|O1|F1", "ORC|RE|O1|F1", "OBX|1|NM|A||1")
    assert v2.standard_order(message, R22) == (None, [])


@pytest.mark.parametrize(
    "trailing, message",
    [
        ({"OBX": []}, "not an optional segment"),
        ({"ORC": ["ORC-2=PID-3"]}, "is not ORC-n=OBR-m"),
        ([], "is a map"),
    ],
)
def test_trailing_is_checked_when_loaded(trailing: object, message: str) -> None:
    items = [
        "MSH!",
        {"group": "ORDER", "repeat": True, "trailing": trailing,
         "items": ["ORC", "OBR!", {"group": "OBSERVATION", "items": ["OBX!"]}]},
    ]  # fmt: skip
    if trailing == []:
        items[1]["trailing"] = ["ORC"]  # type: ignore[index]
    with pytest.raises(ValueError, match=message):
        v2.compile_structure(items)

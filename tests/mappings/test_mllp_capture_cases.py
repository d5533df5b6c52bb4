"""MLLP captures (fixtures/hl7v2/mllp): the bytes of one connection cut into messages by the
listener's own frame reader, each translated: no error, the hand-written facts of each
message hold, valid FHIR R4, every OBX accounted for, and the whole equals the golden file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from adapter.hl7v2 import parse_hl7v2
from adapter.mapping.golden import (
    find_cases,
    golden_path,
    run_case,
    split_capture,
    translate_capture,
)
from adapter.pipeline import Translator
from tests.fhir_checks import validate_r4
from tests.golden import check_golden
from tests.mappings.conftest import FIXTURES
from tests.mappings.oru_facts import by_type, check_case

MLLP = FIXTURES / "hl7v2" / "mllp"
CASES: list[dict[str, Any]] = yaml.safe_load((MLLP / "cases.yaml").read_text(encoding="utf-8"))
IDS = [c["file"] for c in CASES]


def capture(case: dict[str, Any]) -> bytes:
    return (MLLP / case["file"]).read_bytes()


def test_every_capture_file_has_a_case() -> None:
    files = {p.relative_to(MLLP).as_posix() for p in MLLP.rglob("*.mllp")}
    assert files == {c["file"] for c in CASES}


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_the_capture_holds_the_messages_the_case_names(case: dict[str, Any]) -> None:
    """Whole frames only, in order, each a message of its own (MSH-10 as in the case)."""
    raw = capture(case)
    assert raw.startswith(b"\x0b") and raw.endswith(b"\x1c\r")
    messages = split_capture(raw, case["capture"])
    assert [parse_hl7v2(m).segments[0].get(10) for m in messages] == [
        m["control_id"] for m in case["messages"]
    ]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_capture_case(translator: Translator, case: dict[str, Any]) -> None:
    actual = translate_capture(capture(case), case["capture"], case["source"], translator.translate)
    assert len(actual["messages"]) == len(case["messages"])
    problems: list[str] = []
    for number, (made, facts) in enumerate(zip(actual["messages"], case["messages"], strict=True)):
        where = f"message {number + 1}"
        errors = [i for i in made["issues"] if i["severity"] in ("error", "fatal")]
        problems.extend(f"{where}: {e}" for e in errors)
        problems.extend(
            f"{where}: {p}" for p in check_case(made["resources"], made["issues"], facts["expect"])
        )
        for resource in made["resources"]:
            problems.extend(
                f"{where}: {resource['resourceType']}/{resource['id']}: {p}"
                for p in validate_r4(resource)
            )
        for element in facts.get("patient_absent", []):
            patient = by_type(made["resources"], "Patient")[0]
            if element in patient:
                problems.append(f"{where}: Patient.{element} {patient[element]} (a placeholder)")
    problems.extend(check_golden(golden_path(MLLP, case["file"]), actual))
    assert not problems, "\n".join([case["file"], *problems])


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_every_obx_of_every_message_is_accounted_for(
    translator: Translator, case: dict[str, Any]
) -> None:
    for raw in split_capture(capture(case), case["capture"]):
        outcome = translator.translate(raw, case["source"])
        observations = [r for r in outcome.resources if r["resourceType"] == "Observation"]
        assert len(parse_hl7v2(raw).segments_named("OBX")) == len(observations)


def test_a_capture_cut_off_is_refused_with_its_reason(tmp_path: Path) -> None:
    """A golden capture holds whole messages: a frame not ended, or cut by the next start
    block, is a failure of the case, not a message quietly dropped."""
    raw = capture(CASES[0])
    with pytest.raises(ValueError, match="cut off or not ended"):
        split_capture(raw[:-1], "mllp")
    second = raw.index(b"\x0b", 1)
    with pytest.raises(ValueError, match="cut off or not ended"):
        split_capture(raw[: second - 10] + raw[second:], "mllp")
    with pytest.raises(ValueError, match="no MLLP frame"):
        split_capture(b"MSH|^~\\&|not framed\r", "mllp")


def test_adapter_mappings_test_compares_each_message_of_a_capture(
    translator: Translator, tmp_path: Path
) -> None:
    """The runner behind ``adapter mappings test`` names the differing field of the message
    it is in, and refuses a capture whose last frame was cut."""
    folder = tmp_path / "mllp"
    (folder / "county-lis-xinda").mkdir(parents=True)
    case = CASES[0]
    (folder / "cases.yaml").write_text(
        (MLLP / "cases.yaml").read_text(encoding="utf-8"), encoding="utf-8"
    )
    (folder / case["file"]).write_bytes(capture(case))
    golden = golden_path(MLLP, case["file"]).read_text(encoding="utf-8")
    changed = golden.replace('"value": 2.9,', '"value": 2.8,', 1)
    assert changed != golden
    golden_path(folder, case["file"]).write_text(changed, encoding="utf-8")
    [found], broken = find_cases(folder)
    assert not broken
    result = run_case(found, translator.translate)
    assert not result.ok
    assert len(result.lines) == 1 and result.lines[0].startswith("messages[1].resources[")
    assert "2.9 != expected 2.8" in result.lines[0]
    (folder / case["file"]).write_bytes(capture(case)[:-2])
    cut = run_case(found, translator.translate)
    assert not cut.ok and "cut off or not ended" in cut.lines[0]

"""Every ORU^R01 fixture: translated, valid FHIR R4, the hand-written facts hold, and the
output equals its golden file field by field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from adapter.pipeline import Translator
from tests.fhir_checks import validate_r4
from tests.golden import check_golden
from tests.mappings.conftest import FIXTURES
from tests.mappings.oru_facts import check_case

ORU = FIXTURES / "hl7v2" / "oru"
CASES: list[dict[str, Any]] = yaml.safe_load((ORU / "cases.yaml").read_text(encoding="utf-8"))


def golden_path(case: dict[str, Any]) -> Path:
    return ORU / (case["file"].removesuffix(".hl7") + ".expected.json")


def translate(translator: Translator, case: dict[str, Any]) -> tuple[list[dict], list[dict]]:
    outcome = translator.translate((ORU / case["file"]).read_bytes(), case["source"])
    return outcome.resources, [i.as_dict() for i in outcome.issues]


def test_every_fixture_file_has_a_case() -> None:
    files = {p.relative_to(ORU).as_posix() for p in ORU.rglob("*.hl7")}
    assert files == {c["file"] for c in CASES}
    assert len(CASES) >= 15


@pytest.mark.parametrize("case", CASES, ids=[c["file"] for c in CASES])
def test_oru_case(translator: Translator, case: dict[str, Any]) -> None:
    resources, issues = translate(translator, case)
    errors = [i for i in issues if i["severity"] in ("error", "fatal")]
    assert not errors, f"{case['file']} failed: {errors}"
    problems = check_case(resources, issues, case["expect"])
    for resource in resources:
        problems.extend(
            f"{resource['resourceType']}/{resource['id']}: {p}" for p in validate_r4(resource)
        )
    problems.extend(check_golden(golden_path(case), {"resources": resources, "issues": issues}))
    assert not problems, "\n".join([case["file"], *problems])


@pytest.mark.parametrize("case", CASES, ids=[c["file"] for c in CASES])
def test_every_obx_is_accounted_for(translator: Translator, case: dict[str, Any]) -> None:
    """No silent drop: each OBX becomes an Observation or an issue names it."""
    raw = (ORU / case["file"]).read_bytes()
    from adapter.hl7v2 import parse_hl7v2

    message = parse_hl7v2(raw)
    resources, issues = translate(translator, case)
    observations = [r for r in resources if r["resourceType"] == "Observation"]
    # an issue about the whole OBX (not one of its fields: OBX[4]-10 "not read" is a field
    # left over from an Observation that was made)
    named = {
        i.get("location", "").split("-")[0]
        for i in issues
        if "not made" in i["diagnostics"]
        or ("not read" in i["diagnostics"] and "-" not in i.get("location", ""))
    }
    obx = message.segments_named("OBX")
    unaccounted = (
        len(obx) - len(observations) - sum(1 for s in obx if f"OBX[{s.occurrence}]" in named)
    )
    assert unaccounted == 0, f"{case['file']}: {len(obx)} OBX, {len(observations)} Observations"


def test_nm_in_exponent_notation_and_nm_text_cost_nothing_else(translator: Translator) -> None:
    """Viral loads in exponent notation (2.4E+05) are numbers; an NM that is not a number
    (未检出) is a warning at its own OBX-5 with the text kept, not an error that quarantines
    the whole message (std-hl7v2/viral-load-nm)."""
    raw = (ORU / "std-hl7v2" / "viral-load-nm.hl7").read_bytes()
    outcome = translator.translate(raw, "std-hl7v2")
    issues = [i.as_dict() for i in outcome.issues]
    assert not [i for i in issues if i["severity"] in ("error", "fatal")]
    nm_warnings = [i for i in issues if "says NM" in i["diagnostics"]]
    assert [(i["severity"], i["location"]) for i in nm_warnings] == [("warning", "OBX[2]-5")]
    by_code = {
        r["code"]["coding"][0]["code"]: r
        for r in outcome.resources
        if r["resourceType"] == "Observation"
    }
    hbv = by_code["HBVDNA"]["valueQuantity"]
    assert hbv["value"] == 240000 and type(hbv["value"]) is int  # the number, no digits invented
    assert by_code["HBVDNA"]["referenceRange"][0]["high"]["value"] == 20
    assert by_code["HCVRNA"]["valueString"] == "未检出"
    assert "valueQuantity" not in by_code["HCVRNA"]
    assert by_code["HIVRNA"]["valueQuantity"]["comparator"] == "<"
    # the same text in a message whose other results are fine: every Observation is there
    assert set(by_code) == {"HBVDNA", "HCVRNA", "HIVRNA", "ALT"}


def test_an_abnormal_flag_in_obx10_is_read_only_when_obx8_is_empty(translator: Translator) -> None:
    """Shared rules: a table-0078 flag in OBX-10 (H, ↓, 偏高) with OBX-8 empty is the
    interpretation, with an information note at that OBX-10; OBX-8 wins when both are written;
    the table-0080 codes N and S in OBX-10 are not read as flags (std-hl7v2/obx10-flags)."""
    raw = (ORU / "std-hl7v2" / "obx10-flags.hl7").read_bytes()
    outcome = translator.translate(raw, "std-hl7v2")
    flags = {
        r["code"]["coding"][0]["code"]: [
            c["code"] for i in r.get("interpretation", []) for c in i["coding"]
        ]
        for r in outcome.resources
        if r["resourceType"] == "Observation"
    }
    assert flags == {"GLU": ["H"], "K": ["L"], "TBIL": ["H"], "CREA": ["H"], "ALT": [], "UA": []}
    notes = [
        i.as_dict()["location"]
        for i in outcome.issues
        if i.as_dict()["severity"] == "information" and "OBX-10" in i.as_dict()["diagnostics"]
    ]
    assert notes == ["OBX[1]-10", "OBX[2]-10", "OBX[3]-10"]

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
    named = {
        i.get("location", "").split("-")[0]
        for i in issues
        if "not made" in i["diagnostics"] or "not read" in i["diagnostics"]
    }
    obx = message.segments_named("OBX")
    unaccounted = (
        len(obx) - len(observations) - sum(1 for s in obx if f"OBX[{s.occurrence}]" in named)
    )
    assert unaccounted == 0, f"{case['file']}: {len(obx)} OBX, {len(observations)} Observations"

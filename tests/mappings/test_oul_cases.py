"""Every OUL^R21 / R22 / R24 fixture: translated, valid FHIR R4, the hand-written facts hold,
the output equals its golden file, and a report sent as OUL gives exactly the resources the
same report sent as ORU^R01 gives."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from adapter.hl7v2 import parse_hl7v2
from adapter.pipeline import Translator
from tests.fhir_checks import validate_r4
from tests.golden import check_golden
from tests.mappings.conftest import FIXTURES
from tests.mappings.oru_facts import check_case

OUL = FIXTURES / "hl7v2" / "oul"
ORU = FIXTURES / "hl7v2" / "oru"
CASES: list[dict[str, Any]] = yaml.safe_load((OUL / "cases.yaml").read_text(encoding="utf-8"))
IDS = [c["file"] for c in CASES]


def golden_path(case: dict[str, Any]) -> Path:
    return OUL / (case["file"].removesuffix(".hl7") + ".expected.json")


def translate(translator: Translator, path: Path, source: str) -> tuple[list[dict], list[dict]]:
    outcome = translator.translate(path.read_bytes(), source)
    return outcome.resources, [i.as_dict() for i in outcome.issues]


def test_every_fixture_file_has_a_case() -> None:
    files = {p.relative_to(OUL).as_posix() for p in OUL.rglob("*.hl7")}
    assert files == {c["file"] for c in CASES}
    kinds = {parse_hl7v2((OUL / c["file"]).read_bytes()).message_type() for c in CASES}
    assert kinds == {"OUL^R21", "OUL^R22", "OUL^R24"}


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_oul_case(translator: Translator, case: dict[str, Any]) -> None:
    resources, issues = translate(translator, OUL / case["file"], case["source"])
    errors = [i for i in issues if i["severity"] in ("error", "fatal")]
    assert not errors, f"{case['file']} failed: {errors}"
    problems = check_case(resources, issues, case["expect"])
    for resource in resources:
        problems.extend(
            f"{resource['resourceType']}/{resource['id']}: {p}" for p in validate_r4(resource)
        )
    problems.extend(check_golden(golden_path(case), {"resources": resources, "issues": issues}))
    assert not problems, "\n".join([case["file"], *problems])


@pytest.mark.parametrize("case", [c for c in CASES if "same_as" in c], ids=lambda c: c["file"])
def test_same_report_as_oru_gives_identical_resources(
    translator: Translator, case: dict[str, Any]
) -> None:
    oul, _ = translate(translator, OUL / case["file"], case["source"])
    oru, _ = translate(translator, ORU / case["same_as"], case["source"])

    def key(r: dict[str, Any]) -> tuple[str, str]:
        return r["resourceType"], r["id"]

    assert [key(r) for r in sorted(oul, key=key)] == [key(r) for r in sorted(oru, key=key)]
    assert sorted(oul, key=key) == sorted(oru, key=key)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_every_obx_is_accounted_for(translator: Translator, case: dict[str, Any]) -> None:
    """No silent drop: each OBX becomes an Observation or an issue names it."""
    message = parse_hl7v2((OUL / case["file"]).read_bytes())
    resources, issues = translate(translator, OUL / case["file"], case["source"])
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


def test_orc_after_obr_in_r21_needs_the_dialect(translator: Translator) -> None:
    """The shared OUL^R21 follows the standard (ORC before OBR): the 信达 message, whose ORC
    follows its OBR, is refused there with the place named, and read by its dialect."""
    raw = (OUL / "county-lis-xinda" / "emergency-two-orders-gbk.hl7").read_bytes()
    shared = translator.translate(raw, "std-hl7v2")
    errors = [i for i in shared.issues if i.severity in ("error", "fatal")]
    assert any("has no OBR" in i.diagnostics for i in errors), errors
    dialect = translator.translate(raw, "county-lis-xinda")
    assert not [i for i in dialect.issues if i.severity in ("error", "fatal")]

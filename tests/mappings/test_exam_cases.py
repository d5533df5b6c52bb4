"""Exam reports (PACS, ultrasound, ECG) over ORU^R01: translated, valid FHIR R4, the
hand-written facts hold, the golden files match; the category is the exam's (never LAB),
findings and impression stay apart, and lab reports are not affected."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from adapter.pipeline import Pipeline
from tests.fhir_checks import validate_r4
from tests.golden import check_golden
from tests.mappings.conftest import FIXTURES
from tests.mappings.exam_facts import check_exam_case

EXAM = FIXTURES / "hl7v2" / "exam"
CASES: list[dict[str, Any]] = yaml.safe_load((EXAM / "cases.yaml").read_text(encoding="utf-8"))


def test_every_fixture_file_has_a_case() -> None:
    files = {p.relative_to(EXAM).as_posix() for p in EXAM.rglob("*.hl7")}
    assert files == {c["file"] for c in CASES}


@pytest.mark.parametrize("case", CASES, ids=[c["file"] for c in CASES])
def test_exam_case(translator: Pipeline, case: dict[str, Any]) -> None:
    outcome = translator.translate((EXAM / case["file"]).read_bytes(), case["source"])
    issues = [i.as_dict() for i in outcome.issues]
    errors = [i for i in issues if i["severity"] in ("error", "fatal")]
    assert not errors, f"{case['file']} failed: {errors}"
    problems = check_exam_case(outcome.resources, case["expect"])
    for resource in outcome.resources:
        problems.extend(
            f"{resource['resourceType']}/{resource['id']}: {p}" for p in validate_r4(resource)
        )
    golden = EXAM / (case["file"].removesuffix(".hl7") + ".expected.json")
    problems.extend(check_golden(golden, {"resources": outcome.resources, "issues": issues}))
    assert not problems, "\n".join([case["file"], *problems])


def test_the_pacs_dialect_table_is_what_makes_it_an_exam(translator: Pipeline) -> None:
    """Without the 睿影 item table (the shared rules alone) the ultrasound, whose OBR-24 is
    empty, is read as a lab report, and its text OBX without an item code are refused as lab
    results: the dialect's data, not code, decides."""
    raw = (EXAM / "county-pacs-hl7" / "thyroid-us-gb18030.hl7").read_bytes()
    shared = translator.translate(raw, "std-hl7v2")
    errors = [i for i in shared.issues if i.severity == "error"]
    assert any("the item code) is empty" in i.diagnostics for i in errors), errors
    dialect = translator.translate(raw, "county-pacs-hl7")
    [report] = [r for r in dialect.resources if r["resourceType"] == "DiagnosticReport"]
    assert report["category"][0]["coding"][0]["code"] == "RUS"

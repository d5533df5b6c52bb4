"""Every referral-slip fixture (HL7 v2, CDA, vendor XML GBK / UTF-8, JSON, CSV): translated,
valid FHIR R4, the hand-written facts hold, and the output equals its golden file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from adapter.pipeline import Translator
from tests.fhir_checks import validate_r4
from tests.golden import check_golden
from tests.mappings.conftest import FIXTURES
from tests.mappings.referral_facts import check_case

FOLDERS = [FIXTURES / fmt / "referral" for fmt in ("hl7v2", "cda", "xml", "json", "csv")]
CASES: list[tuple[Path, dict[str, Any]]] = [
    (folder, case)
    for folder in FOLDERS
    if (folder / "cases.yaml").exists()
    for case in yaml.safe_load((folder / "cases.yaml").read_text(encoding="utf-8"))
]
IDS = [f"{folder.parent.name}/{case['file']}" for folder, case in CASES]


def golden_path(folder: Path, case: dict[str, Any]) -> Path:
    return folder / (case["file"].rsplit(".", 1)[0] + ".expected.json")


def test_every_fixture_file_has_a_case() -> None:
    for folder in FOLDERS:
        if not (folder / "cases.yaml").exists():
            continue
        files = {
            p.relative_to(folder).as_posix()
            for p in folder.rglob("*")
            if p.is_file()
            and p.name not in ("cases.yaml", "README.md")
            and not p.name.endswith(".expected.json")
        }
        assert files == {c["file"] for f, c in CASES if f == folder}, folder


def test_enough_cases_per_format() -> None:
    per_format: dict[str, int] = {}
    for folder, _ in CASES:
        per_format[folder.parent.name] = per_format.get(folder.parent.name, 0) + 1
    assert all(n >= 5 for n in per_format.values()), per_format


@pytest.mark.parametrize(("folder", "case"), CASES, ids=IDS)
def test_referral_case(translator: Translator, folder: Path, case: dict[str, Any]) -> None:
    raw = (folder / case["file"]).read_bytes()
    outcome = translator.translate(raw, case["source"])
    issues = [i.as_dict() for i in outcome.issues]
    errors = [i for i in issues if i["severity"] in ("error", "fatal")]
    if case.get("quarantined"):
        for text in case["quarantined"]:
            assert any(text in e["diagnostics"] for e in errors), (text, errors)
        return
    assert not errors, f"{case['file']} failed: {errors}"
    problems = check_case(outcome.resources, issues, case["expect"], raw)
    for resource in outcome.resources:
        problems.extend(
            f"{resource['resourceType']}/{resource['id']}: {p}" for p in validate_r4(resource)
        )
    problems.extend(
        check_golden(golden_path(folder, case), {"resources": outcome.resources, "issues": issues})
    )
    assert not problems, "\n".join([case["file"], *problems])

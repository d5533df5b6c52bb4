"""Every ADT fixture (A01 A02 A03 A04 A08 A11 A13 A40): translated, valid FHIR R4, the
hand-written facts hold, the output equals its golden file; the events of one stay update
one Encounter; a merge points at the record really stored."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from adapter.hl7v2 import parse_hl7v2
from adapter.pipeline import Translator
from tests.fhir_checks import validate_r4
from tests.golden import check_golden
from tests.mappings.adt_facts import check_adt_case
from tests.mappings.conftest import FIXTURES

ADT = FIXTURES / "hl7v2" / "adt"
CASES: list[dict[str, Any]] = yaml.safe_load((ADT / "cases.yaml").read_text(encoding="utf-8"))
IDS = [c["file"] for c in CASES]


def translate(translator: Translator, file: str, source: str) -> tuple[list[dict], list[dict]]:
    outcome = translator.translate((ADT / file).read_bytes(), source)
    return outcome.resources, [i.as_dict() for i in outcome.issues]


def test_every_fixture_file_has_a_case_and_every_event_is_covered() -> None:
    files = {p.relative_to(ADT).as_posix() for p in ADT.rglob("*.hl7")}
    assert files == {c["file"] for c in CASES}
    events = {parse_hl7v2((ADT / c["file"]).read_bytes()).message_type() for c in CASES}
    wanted = {"A01", "A02", "A03", "A04", "A08", "A11", "A13", "A40"}
    assert events == {f"ADT^{e}" for e in wanted}


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_adt_case(translator: Translator, case: dict[str, Any]) -> None:
    resources, issues = translate(translator, case["file"], case["source"])
    errors = [i for i in issues if i["severity"] in ("error", "fatal")]
    assert not errors, f"{case['file']} failed: {errors}"
    problems = check_adt_case(resources, case["expect"])
    for resource in resources:
        problems.extend(
            f"{resource['resourceType']}/{resource['id']}: {p}" for p in validate_r4(resource)
        )
    golden = ADT / (case["file"].removesuffix(".hl7") + ".expected.json")
    problems.extend(check_golden(golden, {"resources": resources, "issues": issues}))
    assert not problems, "\n".join([case["file"], *problems])


def _encounter_id(translator: Translator, file: str, source: str) -> str:
    resources, _ = translate(translator, file, source)
    return next(r["id"] for r in resources if r["resourceType"] == "Encounter")


@pytest.mark.parametrize(
    "case", [c for c in CASES if "same_encounter_as" in c], ids=lambda c: c["file"]
)
def test_events_of_one_stay_update_one_encounter(
    translator: Translator, case: dict[str, Any]
) -> None:
    assert _encounter_id(translator, case["file"], case["source"]) == _encounter_id(
        translator, case["same_encounter_as"], case["source"]
    )


def test_merge_points_at_the_record_that_was_stored(translator: Translator) -> None:
    case = next(c for c in CASES if "merges" in c)
    merge, _ = translate(translator, case["file"], case["source"])
    earlier, _ = translate(translator, case["merges"], case["source"])
    merged = next(r for r in merge if r["resourceType"] == "Patient" and r["active"] is False)
    stored = next(r for r in earlier if r["resourceType"] == "Patient")
    assert merged["id"] == stored["id"]


def test_merge_of_a_record_into_itself_is_refused(translator: Translator) -> None:
    raw = (ADT / "county-his" / "a40-merge.hl7").read_bytes()
    raw = raw.replace(b"MRG|MZ0000599871", b"MRG|MZ0000500120")
    raw = raw.replace(b"430999197004052127^^^&2.16.156.10011.1.3&ISO^NNCHN~", b"")
    outcome = translator.translate(raw, "county-his")
    errors = [i for i in outcome.issues if i.severity == "error"]
    assert any(
        "is the surviving one" in i.diagnostics and i.location.startswith("MRG[1]-1")
        for i in errors
    ), errors


def test_a_visit_without_number_keeps_the_patient_with_a_warning_at_its_place(
    translator: Translator,
) -> None:
    raw = (ADT / "county-his" / "a04-register-gb18030.hl7").read_bytes()
    raw = raw.replace(b"MZ2612030411", b"")
    outcome = translator.translate(raw, "county-his")
    assert not [i for i in outcome.issues if i.severity in ("error", "fatal")]
    types = sorted(r["resourceType"] for r in outcome.resources)
    assert "Patient" in types and "Encounter" not in types
    warnings = [i for i in outcome.issues if i.severity == "warning"]
    assert any(
        "Encounter not made" in i.diagnostics
        and "has no number" in i.diagnostics
        and (i.location or "").startswith("PV1[1]-19")
        for i in warnings
    ), warnings

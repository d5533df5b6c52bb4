"""WS/T 500.7 检验报告 (C0007): the 检验结果代码 abnormal flag follows its code (table
2.16.156.10011.2.3.2.38: 1 正常, 2 异常) and a displayName saying the opposite is a located
warning; the 诊断记录章节 becomes Conditions the report names; section narrative is a note,
never dropped silently (issue 15)."""

from __future__ import annotations

from typing import Any

import pytest

from adapter.pipeline import Translator
from adapter.pipeline.merge import merge_stored
from tests.mappings.conftest import FIXTURES

DOC = FIXTURES / "cda" / "lab" / "std-cda" / "uric-acid-diagnosis-narrative.xml"
FLAG = '<value xsi:type="CD" code="1" displayName="异常"'
DISAGREE = "检验结果代码 and its displayName disagree"
NOTE = "http://hl7.org/fhir/5.0/StructureDefinition/extension-DiagnosticReport.note"
REASON = "http://hl7.org/fhir/StructureDefinition/workflow-reasonReference"


def _run(translator: Translator, text: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    outcome = translator.translate(text.encode("utf-8"), "std-cda")
    return outcome.resources, [i.as_dict() for i in outcome.issues]


def _one(resources: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [r for r in resources if r["resourceType"] == kind]
    assert len(found) == 1, found
    return found[0]


@pytest.mark.parametrize(
    ("code", "name", "interpretation", "warned"),
    [
        ("1", "异常", "N", True),  # as the standard's own sample writes it
        ("2", "正常", "A", True),
        ("1", "正常", "N", False),
        ("2", "异常", "A", False),
        ("2", "阳性", "A", False),  # a name that says nothing about the table: no warning
    ],
)
def test_flag_follows_the_code_and_a_contrary_name_is_warned(
    translator: Translator, code: str, name: str, interpretation: str, warned: bool
) -> None:
    text = DOC.read_text(encoding="utf-8")
    assert FLAG in text
    resources, issues = _run(
        translator, text.replace(FLAG, f'<value xsi:type="CD" code="{code}" displayName="{name}"')
    )
    observation = _one(resources, "Observation")
    codes = [c["code"] for i in observation["interpretation"] for c in i.get("coding", [])]
    assert codes == [interpretation]
    assert observation["interpretation"][0]["text"] == name
    warnings = [i for i in issues if DISAGREE in i["diagnostics"]]
    if warned:
        assert [w["severity"] for w in warnings] == ["warning"]
        assert warnings[0]["location"].endswith("/observation[1]/value[1]")
    else:
        assert warnings == []


def test_diagnosis_section_is_a_condition_named_by_the_report(translator: Translator) -> None:
    resources, issues = _run(translator, DOC.read_text(encoding="utf-8"))
    condition = _one(resources, "Condition")
    report = _one(resources, "DiagnosticReport")
    assert [c["code"] for c in condition["code"]["coding"]] == ["M10.901"]
    assert condition["recordedDate"] == "2026-11-20"
    assert condition["subject"] == report["subject"]
    reasons = [e["valueReference"] for e in report["extension"] if e["url"] == REASON]
    assert reasons == [{"reference": f"Condition/{condition['id']}"}]
    assert not [i for i in issues if "not read" in i["diagnostics"]]


def test_section_narrative_is_a_note_and_empty_text_adds_none(translator: Translator) -> None:
    text = DOC.read_text(encoding="utf-8")
    resources, _ = _run(translator, text)
    notes = [
        e["valueAnnotation"]["text"]
        for e in _one(resources, "DiagnosticReport")["extension"]
        if e["url"] == NOTE
    ]
    assert notes == ["镜检：尿酸盐结晶少量，建议一周后复查"]
    emptied = text.replace("<text>镜检：尿酸盐结晶少量，建议一周后复查</text>", "<text/>")
    resources, _ = _run(translator, emptied)
    assert not [
        e for e in _one(resources, "DiagnosticReport").get("extension", []) if e["url"] == NOTE
    ]


def test_a_lab_reports_diagnosis_keeps_what_the_stays_documents_gave(
    translator: Translator,
) -> None:
    """The report's Condition has the id of the stay's (facility, visit, code): stored after
    an 出院小结's, it must not strip the encounter only that document gave (update-given)."""
    outcome = translator.translate(DOC.read_bytes(), "std-cda")
    condition = _one(outcome.resources, "Condition")
    assert "encounter" not in condition
    stored = {**condition, "encounter": {"reference": "Encounter/stay"}, "meta": {"versionId": "1"}}
    merged, issues = merge_stored(condition, lambda _t, _i: stored, outcome.policies)
    assert merged["encounter"] == {"reference": "Encounter/stay"}
    assert merged["code"] == condition["code"] and not issues

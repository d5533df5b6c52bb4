"""A note about the patient (NTE after PID) is clinical text: every report sent with it
carries it as a note (R4 Patient has no note), after the order's own notes; nothing of it
is left unread (issue 15, section 1)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from adapter.pipeline import Translator
from tests.mappings.conftest import FIXTURES

NOTE_EXT = "http://hl7.org/fhir/5.0/StructureDefinition/extension-DiagnosticReport.note"
V2 = FIXTURES / "hl7v2"


def with_patient_note(path: Path, *notes: str) -> bytes:
    """The fixture with NTE segments written right after its PID."""
    raw = path.read_bytes()
    segments = raw.split(b"\r")
    at = next(i for i, s in enumerate(segments) if s.startswith(b"PID|")) + 1
    added = [f"NTE|{n}||{text}".encode() for n, text in enumerate(notes, 1)]
    return b"\r".join([*segments[:at], *added, *segments[at:]])


def notes(report: dict[str, Any]) -> list[str]:
    return [
        e["valueAnnotation"]["text"] for e in report.get("extension", []) if e["url"] == NOTE_EXT
    ]


def translate(translator: Translator, raw: bytes) -> tuple[list[dict], list[Any]]:
    outcome = translator.translate(raw, "std-hl7v2")
    assert not outcome.failed, outcome.issues
    return outcome.resources, outcome.issues


def test_every_report_of_the_patient_carries_the_note(translator: Translator) -> None:
    raw = with_patient_note(V2 / "oru" / "std-hl7v2" / "two-orders.hl7", "患者自述空腹12小时")
    resources, issues = translate(translator, raw)
    reports = [r for r in resources if r["resourceType"] == "DiagnosticReport"]
    assert len(reports) == 2
    assert [notes(r) for r in reports] == [["患者自述空腹12小时"]] * 2
    assert not [i for i in issues if i.location and i.location.startswith("NTE[1]")]
    assert all(
        "患者自述" not in str(r) for r in resources if r["resourceType"] != "DiagnosticReport"
    )


def test_the_patient_notes_follow_the_order_s_own(translator: Translator) -> None:
    """urine-r24: a note on the order (标本轻度溶血), then two notes about the patient."""
    raw = with_patient_note(
        V2 / "oul" / "std-hl7v2" / "urine-r24.hl7", "孕32周", "近3日服用维生素C"
    )
    resources, issues = translate(translator, raw)
    [report] = [r for r in resources if r["resourceType"] == "DiagnosticReport"]
    assert notes(report) == ["标本轻度溶血", "孕32周", "近3日服用维生素C"]
    assert not [i for i in issues if i.severity == "warning" and "not read" in i.diagnostics]


def test_an_exam_report_carries_the_note(translator: Translator) -> None:
    raw = with_patient_note(V2 / "exam" / "std-hl7v2" / "ct-chest.hl7", "造影剂过敏史")
    resources, issues = translate(translator, raw)
    [report] = [r for r in resources if r["resourceType"] == "DiagnosticReport"]
    assert notes(report)[-1] == "造影剂过敏史"
    assert not [i for i in issues if i.location and i.location.startswith("NTE[1]")]

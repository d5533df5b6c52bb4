"""The WS/T 500 header's 婚姻状况 (maritalStatusCode, GB/T 2261.2) and 民族 (ethnicGroupCode,
GB 3304) are read into the Patient, as the HL7 v2 and v3 patients carry them: real documents
(南方医院's 病历概要 and 入院评估) write them, and they were only information notes (issue 15)."""

from __future__ import annotations

from typing import Any

import pytest

from adapter.pipeline import Translator
from tests.mappings.conftest import FIXTURES

GENDER = '<administrativeGenderCode code="2" codeSystem="2.16.156.10011.2.3.3.4"'
HEADER = (
    '<maritalStatusCode code="20" codeSystem="2.16.156.10011.2.3.3.5" displayName="已婚"/>'
    '<ethnicGroupCode code="01" codeSystem="2.16.156.10011.2.3.3.3" displayName="汉族"/>'
)
ETHNIC = "https://yigongti-fhir-adapter.github.io/fhir/StructureDefinition/ethnic-group"
DOCUMENTS = [
    FIXTURES / "cda" / "documents" / "std-cda" / "consultation.xml",  # the WS/T 500 documents
    FIXTURES / "cda" / "lab" / "std-cda" / "uric-acid-diagnosis-narrative.xml",  # 检验报告
]


def _with_header(text: str) -> str:
    at = text.index(GENDER)
    end = text.index(">", at) + 1
    return text[:end] + HEADER + text[end:]


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: p.name)
def test_marital_status_and_ethnic_group_reach_the_patient(
    translator: Translator, path: Any
) -> None:
    text = path.read_bytes().decode("utf-8")
    assert GENDER in text
    outcome = translator.translate(_with_header(text).encode("utf-8"), "std-cda")
    (patient,) = [r for r in outcome.resources if r["resourceType"] == "Patient"]
    assert patient["maritalStatus"]["coding"][0]["code"] == "M"
    assert patient["maritalStatus"]["text"] == "已婚"
    (ethnic,) = [e for e in patient["extension"] if e["url"] == ETHNIC]
    assert ethnic["valueCodeableConcept"]["coding"][0]["code"] == "01"
    unread = [i.location for i in outcome.issues if "not read" in i.diagnostics]
    assert not [u for u in unread if "maritalStatusCode" in u or "ethnicGroupCode" in u]
    plain = translator.translate(path.read_bytes(), "std-cda")
    (before,) = [r for r in plain.resources if r["resourceType"] == "Patient"]
    assert "maritalStatus" not in before and "extension" not in before

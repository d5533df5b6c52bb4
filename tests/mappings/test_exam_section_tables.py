"""The three tables keyed by OBR-24 as written stay in step: every section that makes an
exam report (report-kind.yaml) has an Observation category and a v2-0074 coding, so a code
added to one table alone cannot give an exam report whose findings have no category."""

from __future__ import annotations

from pathlib import Path

import yaml

MAPS = Path(__file__).resolve().parents[2] / "mappings" / "_shared" / "concept-maps"
# sections with no code in HL7 table 0074 (endoscopy): category text only, with a warning
NO_V2_0074_CODE = {"ES", "内镜"}


def _keys(name: str) -> dict[str, object]:
    return yaml.safe_load((MAPS / name).read_text(encoding="utf-8"))["map"]


def test_every_exam_section_has_an_observation_category() -> None:
    exams = {k for k, v in _keys("report-kind.yaml").items() if v == "exam"}
    missing = exams - set(_keys("section-observation-category.yaml"))
    assert not missing, f"not in section-observation-category.yaml: {sorted(missing)}"


def test_every_exam_section_has_a_v2_0074_coding() -> None:
    exams = {k for k, v in _keys("report-kind.yaml").items() if v == "exam"}
    missing = exams - set(_keys("diagnostic-service-section.yaml")) - NO_V2_0074_CODE
    assert not missing, f"not in diagnostic-service-section.yaml: {sorted(missing)}"
    # a LAB coding would make an exam look like a lab report
    labs = {
        k
        for k in exams
        if (_keys("diagnostic-service-section.yaml").get(k) or {}).get("code") == "LAB"
    }
    assert not labs

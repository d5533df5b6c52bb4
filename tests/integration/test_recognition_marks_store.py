"""adapter.recognition.marks on the real database (SQLite, and PostgreSQL with -m db and
ADAPTER_TEST_DATABASE_URL): Specimens from the message or from the store, a mark the
message claims, exam reports, with the example catalogue (fixtures/recognition.yaml)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from adapter.consortium import load_consortium
from adapter.recognition.catalogue import load_catalogue
from adapter.recognition.marks import ResultMarks
from adapter.recognition.parameters import MARK_SYSTEM
from adapter.settings import DEFAULT_CONSORTIUM
from adapter.store import make_engine, save_resources, session_factory

ROOT = Path(__file__).resolve().parents[2]
NS = "https://qingshan.example.cn/fhir/sid"
V2_0487 = "http://terminology.hl7.org/CodeSystem/v2-0487"
SHIQIAO, LIUHE = "shiqiao-township-centre", "liuhe-township-centre"


@pytest.fixture
def session(database_url: str) -> Any:
    engine = make_engine(database_url)
    with session_factory(engine)() as session:
        yield session
    engine.dispose()


@pytest.fixture(scope="module")
def marks() -> ResultMarks:
    consortium = load_consortium(DEFAULT_CONSORTIUM)
    catalogue = load_catalogue(
        ROOT / "fixtures" / "recognition.yaml", {f.id for f in consortium.facilities}
    )
    return ResultMarks(catalogue, consortium)


def glucose(oid: str, specimen: str | None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "code": {"coding": [{"system": f"{NS}/shiqiao/lab-item", "code": "GLU"}]},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2026-11-24T08:45:00+08:00",
        **extra,
    }
    if specimen:
        body["specimen"] = {"reference": f"Specimen/{specimen}"}
    return body


def specimen(sid: str, code: str) -> dict[str, Any]:
    return {
        "resourceType": "Specimen",
        "id": sid,
        "type": {"coding": [{"system": V2_0487, "code": code}]},
    }


def tags(body: dict[str, Any]) -> list[tuple[str, str]]:
    return [(t["system"], t["code"]) for t in body.get("meta", {}).get("tag", [])]


def test_specimen_from_the_message_or_the_store(session: Session, marks: ResultMarks) -> None:
    save_resources(session, [specimen("s-bld", "BLD")], message_id=None, now=datetime.now(UTC))
    session.commit()
    message = [
        specimen("s-ser", "SER"),
        glucose("g-ser", "s-ser"),  # venous serum in the same message: recognised
        glucose("g-bld", "s-bld"),  # fingertip whole blood, stored earlier: not
        glucose("g-none", None),  # no specimen recorded: not (the item needs one)
    ]
    marks.mark(session, message, SHIQIAO)
    assert tags(message[1]) == [(MARK_SYSTEM, "HR")]
    assert tags(message[2]) == []
    assert tags(message[3]) == []
    assert tags(message[0]) == []  # not a result
    # a report names its specimens as a list (DiagnosticReport.specimen is 0..*)
    report = {
        **glucose("g-report", None),
        "resourceType": "DiagnosticReport",
        "specimen": [{"reference": "Specimen/s-bld"}, {"reference": "Specimen/s-ser"}],
    }
    marks.mark(session, [specimen("s-ser", "SER"), report], SHIQIAO)
    assert tags(report) == [(MARK_SYSTEM, "HR")]
    only_blood = {**report, "id": "g-report-2", "specimen": [{"reference": "Specimen/s-bld"}]}
    marks.mark(session, [only_blood], SHIQIAO)
    assert tags(only_blood) == []


def test_a_mark_the_message_claims_is_not_kept(session: Session, marks: ResultMarks) -> None:
    other = {"system": "https://example.cn/tags", "code": "vip"}
    claimed = {"system": MARK_SYSTEM, "code": "HR"}
    # 柳河's blood-count assessment expired 2026-09-19: its November result is not marked
    wbc = {
        "resourceType": "Observation",
        "id": "w1",
        "meta": {"tag": [other, claimed]},
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "6690-2"}]},
        "effectiveDateTime": "2026-11-24T08:45:00+08:00",
    }
    only_claimed = {**wbc, "id": "w2", "meta": {"tag": [claimed]}}
    marks.mark(session, [wbc, only_claimed], LIUHE)
    assert tags(wbc) == [("https://example.cn/tags", "vip")]
    assert "meta" not in only_claimed
    # the same result from 石桥 (qualified): one mark, not two
    again = {**wbc, "id": "w3", "meta": {"tag": [claimed]}}
    marks.mark(session, [again], SHIQIAO)
    assert tags(again) == [(MARK_SYSTEM, "HR")]


def test_an_exam_report_is_marked_by_the_item_of_its_code(
    session: Session, marks: ResultMarks
) -> None:
    def report(code: str) -> dict[str, Any]:
        return {
            "resourceType": "DiagnosticReport",
            "id": f"r-{code}",
            "status": "final",
            "code": {"coding": [{"system": f"{NS}/county-hospital/exam-item", "code": code}]},
            "effectiveDateTime": "2026-11-20T10:00:00+08:00",
            "conclusion": "右肺上叶磨玻璃结节",
        }

    chest_ct, unknown = report("CT0105"), report("XX9999")
    marks.mark(session, [chest_ct, unknown], "qingshan-county-hospital")
    assert tags(chest_ct) == [(MARK_SYSTEM, "HR")]
    assert tags(unknown) == []
    # a result without any date cannot be placed in an assessment: not marked
    undated = report("CT0102")
    del undated["effectiveDateTime"]
    marks.mark(session, [undated], "qingshan-county-hospital")
    assert tags(undated) == []

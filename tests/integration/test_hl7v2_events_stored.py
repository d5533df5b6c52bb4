"""ADT and order events of one stay or one order through the real pipeline and database:
each event updates the same resource (a new version), cancellations change the status and
delete nothing, a status-only message keeps what the order said, and a merge marks the
stored duplicate record inactive without losing what was stored about it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from adapter.consortium import load_consortium
from adapter.pipeline import Pipeline
from adapter.pipeline.receipt import Receipt
from adapter.store import read_resource

ROOT = Path(__file__).resolve().parents[2]
ADT = ROOT / "fixtures" / "hl7v2" / "adt" / "county-his"
ORDERS = ROOT / "fixtures" / "hl7v2" / "orders" / "county-his"
NOW = datetime(2026, 12, 8, 12, 0, tzinfo=UTC)


@pytest.fixture
def pipeline(session_factory: sessionmaker[Session]) -> Pipeline:
    consortium = load_consortium(ROOT / "fixtures" / "consortium.yaml")
    return Pipeline(
        consortium,
        session_factory,
        mappings_dir=ROOT / "mappings",
        max_bytes=5 << 20,
        default_timezone="Asia/Shanghai",
    )


def _ingest(pipeline: Pipeline, path: Path) -> list[str]:
    result = pipeline.ingest(path.read_bytes(), Receipt("county-his", "cli", received_at=NOW))
    assert result.status in ("processed", "processed-with-warnings"), result.issues
    return result.resources


def _read(factory: sessionmaker[Session], ref: str) -> dict:
    kind, rid = ref.split("/", 1)
    with factory() as session:
        body = read_resource(session, kind, rid)
    assert body is not None, ref
    return body


def _one(refs: list[str], kind: str) -> str:
    found = [r for r in refs if r.startswith(kind + "/")]
    assert len(found) == 1, refs
    return found[0]


def test_a_stay_admit_transfer_discharge_and_cancelled_discharge(
    pipeline: Pipeline, session_factory: sessionmaker[Session]
) -> None:
    steps = [
        ("a01-admit.hl7", "in-progress"),
        ("a02-transfer.hl7", "in-progress"),
        ("a03-discharge-gbk.hl7", "finished"),
        ("a13-cancel-discharge.hl7", "in-progress"),
    ]
    refs = set()
    for version, (name, status) in enumerate(steps, start=1):
        ref = _one(_ingest(pipeline, ADT / name), "Encounter")
        refs.add(ref)
        encounter = _read(session_factory, ref)
        assert encounter["status"] == status, name
        assert encounter["meta"]["versionId"] == str(version), name
    assert len(refs) == 1
    final = _read(session_factory, refs.pop())
    assert "end" not in final["period"]  # the discharge was cancelled
    assert final["period"]["start"] == "2026-12-01T10:30:00+08:00"


def test_a_cancelled_visit_stays_stored_as_entered_in_error(
    pipeline: Pipeline, session_factory: sessionmaker[Session]
) -> None:
    ref = _one(_ingest(pipeline, ADT / "a04-register-gb18030.hl7"), "Encounter")
    assert _one(_ingest(pipeline, ADT / "a11-cancel-visit.hl7"), "Encounter") == ref
    encounter = _read(session_factory, ref)
    assert encounter["status"] == "entered-in-error"
    assert encounter["meta"]["versionId"] == "2"


def test_a_merge_marks_the_stored_duplicate_and_keeps_its_data(
    pipeline: Pipeline, session_factory: sessionmaker[Session]
) -> None:
    duplicate = _one(_ingest(pipeline, ADT / "a04-duplicate-record.hl7"), "Patient")
    refs = _ingest(pipeline, ADT / "a40-merge.hl7")
    assert duplicate in refs
    merged = _read(session_factory, duplicate)
    survivor_ref = next(r for r in refs if r.startswith("Patient/") and r != duplicate)
    survivor = _read(session_factory, survivor_ref)
    assert merged["active"] is False
    assert merged["link"] == [{"other": {"reference": survivor_ref}, "type": "replaced-by"}]
    assert merged["birthDate"] == "1970-04-05"  # stored by the A04, not in the A40
    assert {t["value"] for t in merged["telecom"]} == {"13574318876"}
    assert survivor["link"] == [{"other": {"reference": duplicate}, "type": "replaces"}]


def test_a_cancel_revokes_the_order_and_keeps_what_it_said(
    pipeline: Pipeline, session_factory: sessionmaker[Session]
) -> None:
    new = _ingest(pipeline, ORDERS / "orm-lab-new.hl7")
    cancel = _one(_ingest(pipeline, ORDERS / "orm-lab-cancel.hl7"), "ServiceRequest")
    assert cancel in new
    order = _read(session_factory, cancel)
    assert order["status"] == "revoked"
    assert order["occurrenceDateTime"] == "2026-12-02T06:00:00+08:00"  # only in the NW
    assert order["patientInstruction"] == "空腹采血"
    notes = [n["text"] for n in order["note"]]
    assert notes[0] == "医生撤销：改为急查肾功能" and "次日晨空腹" in notes
    other = next(r for r in new if r.startswith("ServiceRequest/") and r != cancel)
    assert _read(session_factory, other)["status"] == "active"  # the other item stands


def test_a_status_change_from_the_pacs_completes_the_exam_order(
    pipeline: Pipeline, session_factory: sessionmaker[Session]
) -> None:
    ref = _one(_ingest(pipeline, ORDERS / "orm-exam-ct-gbk.hl7"), "ServiceRequest")
    assert _one(_ingest(pipeline, ORDERS / "orm-exam-status-sc.hl7"), "ServiceRequest") == ref
    order = _read(session_factory, ref)
    assert order["status"] == "completed"
    assert order["requester"]["display"] == "龙海"  # from the order, not in the SC
    assert order["reasonCode"][0]["text"] == "胸闷待查"
    assert {i["value"] for i in order["identifier"]} == {"JC2612020015", "CT2612020007"}

"""Copies of one referral through the real pipeline and database: the slip and its stub make
one ServiceRequest and keep two originals; a disagreement is a warning naming the element;
the copy stored first is never silently overwritten. The down-slip names the up-referral."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from adapter.consortium import load_consortium
from adapter.identity.national_id import national_id_check_char
from adapter.pipeline import Pipeline
from adapter.pipeline.receipt import Receipt
from adapter.store import read_resource
from adapter.store import search as store_search

ROOT = Path(__file__).resolve().parents[2]
CDA = ROOT / "fixtures" / "cda" / "referral" / "std-cda"
V2 = ROOT / "fixtures" / "hl7v2" / "referral" / "std-hl7v2"
NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


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


def _ids(refs: list[str], kind: str) -> list[str]:
    return [r.split("/", 1)[1] for r in refs if r.startswith(kind + "/")]


def _all(factory: sessionmaker[Session], kind: str) -> list[dict]:
    with factory() as session:
        return store_search(session, kind, [], count=100, offset=0)[1]


def test_slip_then_stub_one_service_request_two_originals(
    pipeline: Pipeline, session_factory: sessionmaker[Session]
) -> None:
    slip = (CDA / "up-slip.xml").read_bytes()
    stub = (CDA / "up-stub.xml").read_bytes()
    first = pipeline.ingest(slip, Receipt("std-cda", "cli", received_at=NOW))
    assert first.status == "processed", first.issues
    second = pipeline.ingest(stub, Receipt("std-cda", "cli", received_at=NOW))
    assert second.status == "processed-with-warnings"
    conflicts = [i for i in second.issues if i.code == "conflict"]
    assert [i.expression for i in conflicts] == ["ServiceRequest.authoredOn", "Task.authoredOn"]
    assert all(i.severity == "warning" and "authoredOn" in i.diagnostics for i in conflicts)

    (sr_id,) = _ids(first.resources, "ServiceRequest")
    assert _ids(second.resources, "ServiceRequest") == [sr_id]
    requests = _all(session_factory, "ServiceRequest")
    assert len(requests) == 1
    docs = _all(session_factory, "DocumentReference")
    assert sorted(base64.b64decode(d["content"][0]["attachment"]["data"]) for d in docs) == sorted(
        [slip, stub]
    )
    assert sorted(d["type"]["text"] for d in docs) == ["转诊单", "转诊单存根"]

    with session_factory() as session:
        stored = read_resource(session, "ServiceRequest", sr_id)
    assert stored is not None
    assert stored["authoredOn"] == "2026-11-24T10:00:00+08:00"  # the slip's, stored first
    assert stored["meta"]["versionId"] == "2"  # the stub added its original
    originals = sorted(
        s["reference"]
        for s in stored["supportingInfo"]
        if s.get("reference", "").startswith("DocumentReference/")
    )
    assert originals == sorted(f"DocumentReference/{d['id']}" for d in docs)
    assert len(_all(session_factory, "Task")) == 1


def test_stub_first_keeps_the_stub_values(
    pipeline: Pipeline, session_factory: sessionmaker[Session]
) -> None:
    stub = pipeline.ingest(
        (CDA / "up-stub.xml").read_bytes(), Receipt("std-cda", "cli", received_at=NOW)
    )
    slip = pipeline.ingest(
        (CDA / "up-slip.xml").read_bytes(), Receipt("std-cda", "cli", received_at=NOW)
    )
    assert stub.status == "processed" and slip.status == "processed-with-warnings"
    (sr_id,) = _ids(stub.resources, "ServiceRequest")
    with session_factory() as session:
        stored = read_resource(session, "ServiceRequest", sr_id)
    assert stored is not None and stored["authoredOn"] == "2026-11-25T08:30:00+08:00"


def test_same_copy_twice_changes_nothing(
    pipeline: Pipeline, session_factory: sessionmaker[Session]
) -> None:
    raw = (V2 / "up-slip.hl7").read_bytes()
    first = pipeline.ingest(raw, Receipt("std-hl7v2", "cli", received_at=NOW))
    again = pipeline.reprocess(first.message_id, now=NOW)
    assert again.status == "processed"
    assert not [i for i in again.issues if i.code == "conflict"]
    (sr_id,) = _ids(first.resources, "ServiceRequest")
    with session_factory() as session:
        stored = read_resource(session, "ServiceRequest", sr_id)
    assert stored is not None and stored["meta"]["versionId"] == "1"


def test_answer_from_the_receiver_joins_the_referral(
    pipeline: Pipeline, session_factory: sessionmaker[Session]
) -> None:
    slip = pipeline.ingest(
        (V2 / "up-slip.hl7").read_bytes(), Receipt("std-hl7v2", "cli", received_at=NOW)
    )
    answer = pipeline.ingest(
        (V2 / "up-answer.hl7").read_bytes(), Receipt("std-hl7v2", "cli", received_at=NOW)
    )
    assert _ids(slip.resources, "ServiceRequest") == _ids(answer.resources, "ServiceRequest")
    assert len(_all(session_factory, "ServiceRequest")) == 1
    assert len(_all(session_factory, "DocumentReference")) == 2
    # the answer lists no report and no notes: what the slip gave is kept
    stored = _all(session_factory, "ServiceRequest")[0]
    assert [s.get("display") for s in stored["supportingInfo"] if "display" in s] == ["血常规"]
    assert len(stored["note"]) == 4


def test_copies_disagreeing_on_receiver_and_reason_are_each_named(
    pipeline: Pipeline, session_factory: sessionmaker[Session]
) -> None:
    slip = (CDA / "up-slip.xml").read_bytes()
    # a stub whose receiving department and diagnosis were written differently
    stub = (CDA / "up-stub.xml").read_text(encoding="utf-8")
    stub = stub.replace("呼吸内科", "感染科").replace('code="J18.900"', 'code="J15.900"')
    assert pipeline.ingest(slip, Receipt("std-cda", "cli", received_at=NOW)).status == "processed"
    second = pipeline.ingest(stub.encode("utf-8"), Receipt("std-cda", "cli", received_at=NOW))
    named = {i.expression for i in second.issues if i.code == "conflict"}
    assert named == {
        "ServiceRequest.performer",
        "ServiceRequest.reasonCode",
        "ServiceRequest.authoredOn",
        "Task.authoredOn",
    }
    stored = _all(session_factory, "ServiceRequest")[0]
    assert stored["reasonCode"][0]["coding"][0]["code"] == "J18.900"  # the first copy's
    assert any("呼吸内科" in p.get("display", "") for p in stored["performer"])


def test_up_slip_stub_and_down_slip_of_one_referral_are_tied_together(
    pipeline: Pipeline, session_factory: sessionmaker[Session]
) -> None:
    folder = ROOT / "fixtures" / "json" / "referral" / "liuhe-his-json"
    results = [
        pipeline.ingest(
            (folder / name).read_bytes(), Receipt("liuhe-his-json", "cli", received_at=NOW)
        )
        for name in ("up-slip.json", "up-stub.json", "down-slip.json")
    ]
    assert [r.status for r in results] == ["processed"] * 3
    requests = {r["id"]: r for r in _all(session_factory, "ServiceRequest")}
    assert len(requests) == 2  # the up-referral (slip + stub) and the down-referral
    (up_id,) = _ids(results[0].resources, "ServiceRequest")
    (down_id,) = _ids(results[2].resources, "ServiceRequest")
    up, down = requests[up_id], requests[down_id]
    assert down["basedOn"] == [{"reference": f"ServiceRequest/{up_id}"}]
    assert down["requisition"] == up["requisition"]
    directions = [
        c["code"]
        for r in (up, down)
        for cat in r["category"]
        for c in cat["coding"]
        if c["system"].endswith("referral-direction")
    ]
    assert directions == ["up", "down"]
    assert len(_all(session_factory, "DocumentReference")) == 3


def test_the_receivers_answer_naming_its_own_record_of_the_patient_is_no_conflict(
    pipeline: Pipeline, session_factory: sessionmaker[Session]
) -> None:
    """The county hospital's RRI^I12 answer names its own Patient record (its source makes
    the id); the patient index links it to the township's record of the slip by the
    national ID, so the referral keeps the slip's subject with a note, not a warning."""
    slip = pipeline.ingest(
        (V2 / "up-slip.hl7").read_bytes(), Receipt("std-hl7v2", "cli", received_at=NOW)
    )
    answer = pipeline.ingest(
        (V2 / "up-answer.hl7").read_bytes(), Receipt("std-hl7v2", "cli", received_at=NOW)
    )
    assert answer.status == "processed", [i.diagnostics for i in answer.issues]
    assert _ids(slip.resources, "Patient") != _ids(answer.resources, "Patient")
    notes = [i for i in answer.issues if "same person" in i.diagnostics]
    assert sorted(i.expression for i in notes) == ["ServiceRequest.subject", "Task.for"]
    (sr_id,) = _ids(slip.resources, "ServiceRequest")
    with session_factory() as session:
        stored = read_resource(session, "ServiceRequest", sr_id)
    assert stored is not None
    assert stored["subject"]["reference"] == "Patient/" + _ids(slip.resources, "Patient")[0]


def test_an_answer_about_another_person_is_still_a_conflict(
    pipeline: Pipeline, session_factory: sessionmaker[Session]
) -> None:
    other = "43099919600101001" + national_id_check_char("43099919600101001")
    raw = (V2 / "up-answer.hl7").read_bytes().replace(b"43099919560312201X", other.encode())
    pipeline.ingest((V2 / "up-slip.hl7").read_bytes(), Receipt("std-hl7v2", "cli", received_at=NOW))
    answer = pipeline.ingest(raw, Receipt("std-hl7v2", "cli", received_at=NOW))
    conflicts = [i for i in answer.issues if i.code == "conflict"]
    assert sorted(i.expression for i in conflicts) == ["ServiceRequest.subject", "Task.for"]
    assert {i.severity for i in conflicts} == {"warning"}

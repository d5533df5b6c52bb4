"""The ledger columns only some slips fill (docs/ledger.md): 医保类型, 接诊医生, 急诊 and
绿色通道, through the real pipeline and the slip mappings (HL7 v2 REF^I12, the WS/T 483
CDA). A slip that has them fills them; a slip that has not leaves them empty, never
guessed. SQLite; PostgreSQL with ``-m db``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event
from sqlalchemy.orm import Session, sessionmaker

from adapter.pipeline import Receipt
from adapter.store.models import ReferralLedger
from tests.integration.referral_support import ROOT, consortium_by_care, pipeline_for

HL7 = ROOT / "fixtures/hl7v2/referral/std-hl7v2"
CDA = ROOT / "fixtures/cda/referral/std-cda"
GREEN = (HL7 / "green-channel-insurance.hl7").read_bytes().decode()


def _hl7(text: str, slip: str) -> bytes:
    """The green-channel slip with its own slip and control numbers."""
    return text.replace("SQ-ZZ-2026-0009", slip).replace("SQ20261120009", f"C{slip[-4:]}").encode()


def _columns(factory: sessionmaker[Session], made: Any) -> dict[str, Any]:
    task = next(r for r in made.resources if r.startswith("Task/")).split("/", 1)[1]
    with factory() as session:
        row = session.get(ReferralLedger, task)
        assert row is not None
        return {
            "insurance": row.insurance,
            "receiver_doctor": row.receiver_doctor,
            "emergency": row.emergency,
            "green_channel": row.green_channel,
        }


@pytest.fixture
def ingest(tmp_path: Path, session_factory: sessionmaker[Session]) -> Any:
    pipeline = pipeline_for(consortium_by_care(tmp_path), session_factory)

    def run(raw: bytes, source: str) -> dict[str, Any]:
        made = pipeline.ingest(raw, Receipt(source, "cli", received_at=datetime.now(UTC)))
        assert made.status.startswith("processed"), made.issues
        return _columns(session_factory, made)

    return run


def test_a_hl7_slip_with_them_fills_them(ingest: Any) -> None:
    assert ingest(_hl7(GREEN, "SQ-ZZ-2026-0301"), "std-hl7v2") == {
        "insurance": "城镇职工基本医疗保险",  # IN1-2 01, before PV1-20 07
        "receiver_doctor": "赵明",  # the RT PRD's PRD-2
        "emergency": True,  # RF1-2 S: stat
        "green_channel": True,  # RF1-2 绿色通道
    }


def test_the_financial_class_when_there_is_no_in1(ingest: Any) -> None:
    lines = [s for s in GREEN.split("\r") if not s.startswith("IN1")]
    assert ingest(_hl7("\r".join(lines), "SQ-ZZ-2026-0302"), "std-hl7v2")["insurance"] == "全自费"
    unknown = "\r".join(lines).replace("|07\r", "|Z9\r")  # a local code: kept as written
    assert ingest(_hl7(unknown, "SQ-ZZ-2026-0303"), "std-hl7v2")["insurance"] == "Z9"


def test_an_urgent_slip_without_green_channel_is_only_emergency(ingest: Any) -> None:
    urgent = GREEN.replace("S^绿色通道^HL70280", "U^紧急^HL70280")
    columns = ingest(_hl7(urgent, "SQ-ZZ-2026-0304"), "std-hl7v2")
    assert (columns["emergency"], columns["green_channel"]) == (True, False)


def test_slips_without_them_leave_them_empty(ingest: Any) -> None:
    empty = {"insurance": None, "receiver_doctor": None, "emergency": False, "green_channel": False}
    assert ingest((HL7 / "up-slip.hl7").read_bytes(), "std-hl7v2") == empty
    assert ingest((CDA / "up-slip.xml").read_bytes(), "std-cda") == empty
    shiqiao = ROOT / "fixtures/xml/referral/shiqiao-his/up-slip.xml"  # 云医 HIS: no such fields
    assert ingest(shiqiao.read_bytes(), "shiqiao-his") == empty


def test_a_cda_slip_with_them_fills_them(ingest: Any) -> None:
    assert ingest((CDA / "green-channel-insurance.xml").read_bytes(), "std-cda") == {
        "insurance": "新型农村合作医疗",  # DE07.00.007.00 code 03
        "receiver_doctor": "钱文",  # intendedRecipient/informationRecipient
        "emergency": True,  # 紧急: urgent
        "green_channel": True,  # RF-GREEN-CHANNEL true
    }


def test_the_receiver_s_answer_names_the_doctor(
    tmp_path: Path, session_factory: sessionmaker[Session]
) -> None:
    """REF^I12 without a receiving doctor, then the county's RRI^I12 naming the doctor in
    its RT PRD: the doctor joins the stored referral (no performer conflict), the ledger
    row shows it."""
    pipeline = pipeline_for(consortium_by_care(tmp_path), session_factory)
    at = Receipt("std-hl7v2", "cli", received_at=datetime.now(UTC))
    slip = pipeline.ingest((HL7 / "up-slip.hl7").read_bytes(), at)
    assert slip.status.startswith("processed"), slip.issues
    assert _columns(session_factory, slip)["receiver_doctor"] is None
    answer = (HL7 / "up-answer.hl7").read_bytes().decode()
    named = answer.replace("PRD|RT^转入机构^HL70286|||", "PRD|RT^转入机构^HL70286|赵^明||")
    assert named != answer
    made = pipeline.ingest(named.encode(), at)
    assert made.status.startswith("processed"), made.issues
    assert not [i for i in made.issues if i.expression == "ServiceRequest.performer"]
    assert _columns(session_factory, made)["receiver_doctor"] == "赵明"


def test_a_new_slip_s_row_reads_each_resource_once_and_is_written_once(
    tmp_path: Path, session_factory: sessionmaker[Session], engine: Engine
) -> None:
    """Describing a ledger row reads the requester's and the owner's PractitionerRole,
    Practitioner and Organization once each (decision 0109: they were read up to four
    times), and a new row is inserted with its next deadline, not inserted then updated.
    The row's columns are those test_a_hl7_slip_with_them_fills_them checks."""
    pipeline = pipeline_for(consortium_by_care(tmp_path), session_factory)
    reads: list[tuple[Any, ...]] = []
    updates: list[str] = []

    def keep(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_args: Any) -> None:
        flat = " ".join(statement.split())
        if flat.startswith("SELECT resource.body, resource.deleted FROM resource WHERE"):
            values = parameters.values() if isinstance(parameters, dict) else parameters
            reads.append(tuple(values))
        if flat.startswith("UPDATE referral_ledger SET next_due_at"):
            updates.append(flat)

    event.listen(engine, "before_cursor_execute", keep)
    try:
        made = pipeline.ingest(
            _hl7(GREEN, "SQ-ZZ-2026-0311"),
            Receipt("std-hl7v2", "cli", received_at=datetime.now(UTC)),
        )
    finally:
        event.remove(engine, "before_cursor_execute", keep)
    assert made.status.startswith("processed"), made.issues
    task = next(r for r in made.resources if r.startswith("Task/")).split("/", 1)[1]
    with session_factory() as session:
        row = session.get(ReferralLedger, task)
        assert row is not None
        assert row.sender_facility and row.receiver_facility
        assert row.receiver_doctor == "赵明"
        assert row.next_due_kind is not None and row.next_due_at is not None
    assert updates == []
    # a new slip: the message's other referral steps read none of them (before: the
    # requester's Organization and the owner's twice each, 10 reads for 7 resources)
    repeated = {r: reads.count(r) for r in reads if reads.count(r) > 1}
    assert repeated == {}, repeated

"""HL7 v2 referral status messages move the Task (issue 12 §1): RRI^I12 accepts (RF1-1 A)
or rejects (R), REF^I14 cancels; the same answer twice changes nothing; an answer out of
order (a rejection after the admission) leaves the Task as it is, naming the rule. The
real pipeline and store (SQLite; PostgreSQL with ``-m db``).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from adapter.api.app import create_app
from adapter.pipeline import Receipt
from adapter.referral.status_messages import change_of
from adapter.settings import Settings
from adapter.store.models import ReferralLedger
from tests.integration.referral_support import ROOT, consortium_by_care

HL7 = ROOT / "fixtures/hl7v2/referral/std-hl7v2"


@pytest.fixture
def app(tmp_path: Path, database_url: str) -> Iterator[Any]:
    app = create_app(Settings(database_url=database_url, config=consortium_by_care(tmp_path)))
    with TestClient(app):
        yield app
    app.state.engine.dispose()


def ingest(app: Any, raw: bytes) -> Any:
    result = app.state.pipeline.ingest(
        raw, Receipt("std-hl7v2", "cli", received_at=datetime.now(UTC))
    )
    assert result.status.startswith("processed"), result.issues
    return result


def notes(result: Any) -> str:
    return " | ".join(
        str(i.get("diagnostics") if isinstance(i, dict) else i) for i in result.issues
    )


def task_of(app: Any, result: Any) -> dict[str, Any]:
    ref = next(r for r in result.resources if r.startswith("Task/"))
    return TestClient(app).get(f"/fhir/{ref}").json()


def answer(status: str, control: str, msa: str = "AA") -> bytes:
    text = (HL7 / "up-answer.hl7").read_bytes().decode("utf-8")
    text = text.replace("RF1|A^已接收^HL70283", f"RF1|{status}^^HL70283")
    text = text.replace("MSA|AA|", f"MSA|{msa}|").replace("QS20261120077", control)
    return text.encode("utf-8")


def without_visit(raw: bytes) -> bytes:
    """The answer without its PV1 (no admission in it): only the status moves."""
    lines = raw.decode("utf-8").split("\r")
    return "\r".join(line for line in lines if not line.startswith("PV1")).encode("utf-8")


def test_status_codes() -> None:
    assert change_of("RRI^I12^RRI_I12", "AA", "A", "").status == "accepted"  # type: ignore[union-attr]
    assert change_of("RRI^I12", "AA", "P", "").status == "received"  # type: ignore[union-attr]
    rejected = change_of("RRI^I12", "AR", "", "床位已满")
    assert rejected is not None and (rejected.status, rejected.reason_text) == (
        "rejected",
        "床位已满",
    )
    assert change_of("RRI^I12", "AA", "E", "") is None  # expiry is the adapter's
    assert change_of("REF^I14", "", "", "").status == "cancelled"  # type: ignore[union-attr]
    assert change_of("REF^I12", "", "P", "") is None  # the slip itself
    assert change_of("REF^I13", "", "A", "") is None  # a modification: no status


def test_rri_accepts_then_admission_and_duplicates(app: Any) -> None:
    slip = ingest(app, (HL7 / "up-slip.hl7").read_bytes())
    task = task_of(app, slip)
    assert task["status"] == "requested"

    pending = ingest(app, without_visit(answer("P", "ANS001")))
    assert "moved to received by the message" in notes(pending)
    accepted = ingest(app, without_visit(answer("A", "ANS002")))
    assert "moved to accepted by the message" in notes(accepted)
    assert task_of(app, slip)["status"] == "accepted"
    version = task_of(app, slip)["meta"]["versionId"]

    again = ingest(app, without_visit(answer("A", "ANS003")))  # the same answer again
    assert "moved to" not in notes(again)
    assert task_of(app, slip)["meta"]["versionId"] == version

    admitted = ingest(app, answer("A", "ANS004"))  # with its PV1: the admission
    assert task_of(app, slip)["status"] == "in-progress", notes(admitted)

    late = ingest(app, without_visit(answer("R", "ANS005", msa="AR")))  # out of order
    assert "refused by rule rejected-from" in notes(late)
    assert task_of(app, slip)["status"] == "in-progress"
    with app.state.session_factory() as session:
        row = session.get(ReferralLedger, task["id"])
        assert row is not None and row.received_at and row.accepted_at and row.arrived_at


def test_rri_rejects_and_ref_i14_cancels(app: Any) -> None:
    slip = ingest(app, (HL7 / "up-slip.hl7").read_bytes())
    rejected = ingest(app, without_visit(answer("R", "ANS011", msa="AR")))
    assert "moved to rejected" in notes(rejected)
    task = task_of(app, slip)
    assert task["status"] == "rejected"
    assert task["statusReason"]["coding"][0]["code"] == "other"

    other = (
        (HL7 / "up-slip.hl7")
        .read_text(encoding="utf-8")
        .replace("SQ-ZZ-2026-0001", "SQ-ZZ-2026-0002")
    )
    second = ingest(app, other.encode("utf-8"))
    cancel = other.replace("REF^I12^REF_I12", "REF^I14^REF_I12").replace(
        "SQ20261120001", "SQ20261120009"
    )
    cancelled = ingest(app, cancel.encode("utf-8"))
    assert "moved to cancelled" in notes(cancelled)
    assert task_of(app, second)["status"] == "cancelled"

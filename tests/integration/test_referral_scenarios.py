"""The issue's scenarios through the real pipeline and app (issue 12 §4; SQLite, and
PostgreSQL with ``-m db``):

* up-referral -> received -> accepted -> arrival by ADT -> discharge summary -> down-slip
  (回转单, county-emr) -> the primary facility's follow-up -> closed, both Tasks, the
  ledger rows and the analysis;
* rejection and re-referral elsewhere (a new Task for another receiver);
* the sender's follow-up owed after discharge, on the worklist when late.

Expiry, green channel / emergency, duplicates and out-of-order messages, cancellation and
two receivers: test_referral_deadlines.py, test_referral_status_messages.py,
test_referral_loop.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import select

from adapter.api.app import create_app
from adapter.referral.scheduler import run_once
from adapter.settings import Settings
from adapter.store import save_resources
from adapter.store.models import ReferralLedger, ReferralOverdue
from tests.integration.referral_support import (
    OTHER,
    RECEIVER,
    ROOT,
    SENDER,
    consortium_by_care,
    status_ops,
)
from tests.integration.test_referral_loop import Loop, _adt, _discharge_summary, _notes
from tests.integration.test_referral_loop import loop as loop  # the fixture

DOWN_SLIP = ROOT / "fixtures/xml/referral/county-emr/down-slip.xml"


def _rows(loop: Loop) -> dict[str, ReferralLedger]:
    with loop.app.state.session_factory() as session:
        return {r.task_id: r for r in session.scalars(select(ReferralLedger))}


def test_up_down_follow_up_closed(loop: Loop) -> None:
    assert loop.patch(RECEIVER, status_ops("received")).status_code == 200
    assert loop.patch(RECEIVER, status_ops("accepted")).status_code == 200
    loop.ingest(_adt("a01-admit.hl7", "SCN001"), "county-his")
    loop.ingest(_adt("a03-discharge-gbk.hl7", "SCN002", "gbk"), "county-his")
    loop.ingest(_discharge_summary(), "county-emr")
    down = loop.ingest(DOWN_SLIP.read_bytes(), "county-emr")
    down_task = next(r for r in down.resources if r.startswith("Task/")).split("/", 1)[1]
    up = loop.get()
    assert (up["status"], up["businessStatus"]["text"]) == ("in-progress", "已出院回转")

    closed = loop.patch(RECEIVER, status_ops("completed"))
    assert closed.status_code == 200, closed.text
    assert closed.json()["businessStatus"]["text"] == "已关闭"

    # the down-referral at the township centre: not closed before the first follow-up
    for ops in (status_ops("accepted"), status_ops("in-progress", "arrived")):
        assert loop.patch(SENDER, ops, down_task).status_code == 200
    early = loop.patch(SENDER, status_ops("completed"), down_task)
    assert early.status_code == 409
    assert "down-referral-follow-up" in early.json()["issue"][0]["diagnostics"]
    assert (
        loop.patch(SENDER, status_ops("in-progress", "followed-up"), down_task).status_code == 200
    )
    done = loop.patch(SENDER, status_ops("completed"), down_task)
    assert done.status_code == 200, done.text

    rows = _rows(loop)
    up_row, down_row = rows[loop.task], rows[down_task]
    assert up_row.direction == "up" and up_row.status == "completed"
    assert up_row.admitted_at and up_row.discharged_at and up_row.feedback_document
    assert down_row.direction == "down" and down_row.follow_ups == 1
    assert down_row.followed_up_at is not None and down_row.status == "completed"
    # the up-referral still owes the sender's follow-up (5 days after the discharge)
    assert up_row.next_due_kind == "follow-up"

    result = loop.client.get(
        "/referrals/analysis", params={"from": "2026-11-01", "to": "2026-12-31"}
    )
    figures = result.json()
    assert figures["counts"]["up"] == 1 and figures["counts"]["down"] == 1
    assert figures["down_ratio"] == 1.0
    assert figures["arrival_rate"] == 1.0

    # five days after the discharge without the sender's follow-up: on the worklist
    assert up_row.discharged_at is not None
    late = up_row.discharged_at + timedelta(days=5, minutes=30)
    run_once(loop.app.state.session_factory, loop.app.state.consortium, now=late)
    items = loop.client.get("/referrals/worklist", params={"facility": SENDER}).json()["rows"]
    assert any(i["task"] == f"Task/{loop.task}" and i["deadline"] == "follow-up" for i in items)
    assert next(i for i in items if i["deadline"] == "follow-up")["facility"] == SENDER


def test_rejection_and_re_referral_elsewhere(loop: Loop) -> None:
    factory = loop.app.state.session_factory
    with factory.begin() as session:
        save_resources(
            session,
            [
                {
                    "resourceType": "Organization",
                    "id": "liuhe-township-centre",
                    "identifier": [{"system": "urn:oid:2.16.156.10011.1.5", "value": "453103053"}],
                    "name": "青山县柳河镇卫生院",
                }
            ],
            message_id=None,
            now=datetime.now(UTC),
        )
    rejected = loop.patch(RECEIVER, status_ops("rejected", reason="bed-full"))
    assert rejected.status_code == 200
    assert loop.request_status() == "revoked"  # no Task of it is open any more
    elsewhere = {
        **{k: v for k, v in loop.get().items() if k not in ("meta", "identifier", "statusReason")},
        "id": "re-referral",
        "status": "requested",
        "businessStatus": None,
        "owner": {"reference": "Organization/liuhe-township-centre"},
    }
    elsewhere = {k: v for k, v in elsewhere.items() if v is not None}
    made = loop.client.put("/fhir/Task/re-referral", json=elsewhere, headers={"X-Facility": SENDER})
    assert made.status_code == 201, made.text
    accepted = loop.patch(OTHER, status_ops("accepted"), "re-referral")
    assert accepted.status_code == 200, accepted.text
    rows = _rows(loop)
    assert rows[loop.task].rejection_reason == "bed-full"
    assert rows["re-referral"].receiver_facility == OTHER
    assert rows["re-referral"].accepted_at is not None
    answer = loop.client.get(
        "/referrals/analysis", params={"from": "2026-11-01", "to": "2026-12-31"}
    ).json()
    assert answer["referrals"] == 1 and answer["tasks"] == 2
    assert answer["acceptance_rate"] == 0.5
    assert answer["rejection_reasons"] == [{"key": "床位已满", "count": 1}]


def test_no_worklist_for_answered_in_time(loop: Loop) -> None:
    assert loop.patch(RECEIVER, status_ops("accepted")).status_code == 200
    with loop.app.state.session_factory() as session:
        row = session.get(ReferralLedger, loop.task)
        assert row is not None
        accepted: Any = row.accepted_at
    run_once(loop.app.state.session_factory, loop.app.state.consortium, now=accepted)
    with loop.app.state.session_factory() as session:
        assert session.scalars(select(ReferralOverdue)).all() == []


@pytest.fixture
def with_shiqiao_adt(tmp_path: Path, database_url: str) -> Iterator[Loop]:
    """The loop's consortium where 石桥 also sends ADT (a registration after discharge is
    its follow-up of the patient)."""
    config = consortium_by_care(tmp_path)
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    shiqiao = next(f for f in data["facilities"] if f["id"] == SENDER)
    shiqiao["sources"].append({"id": "shiqiao-adt", "format": "hl7v2", "mapping": "_shared"})
    config.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    app = create_app(Settings(database_url=database_url, config=config))
    with TestClient(app) as client:
        yield Loop(client)
    app.state.engine.dispose()


def test_the_sender_s_visit_after_discharge_is_its_follow_up(with_shiqiao_adt: Loop) -> None:
    loop = with_shiqiao_adt
    assert loop.patch(RECEIVER, status_ops("accepted")).status_code == 200
    loop.ingest(_adt("a01-admit.hl7", "FUP001"), "county-his")
    loop.ingest(_adt("a03-discharge-gbk.hl7", "FUP002", "gbk"), "county-his")
    row = _rows(loop)[loop.task]
    # the ledger has the ADT's times: admitted 12-01 10:30, discharged 12-08 09:00 (+08:00)
    assert row.admitted_at == datetime(2026, 12, 1, 2, 30, tzinfo=UTC)
    assert row.discharged_at == datetime(2026, 12, 8, 1, 0, tzinfo=UTC)
    before = _adt("a01-admit.hl7", "FUP003").replace(b"ADT^A01^ADT_A01", b"ADT^A04^ADT_A01")
    visit = before.replace(b"|1|I|", b"|1|O|").replace(b"20261201103000", b"20261210090000")
    followed = loop.ingest(visit, "shiqiao-adt")
    assert "the sender's follow-up is Encounter/" in _notes(followed)
    row = _rows(loop)[loop.task]
    assert row.followed_up_at == datetime(2026, 12, 10, 1, 0, tzinfo=UTC)
    assert row.follow_up_record is not None and row.follow_up_record.startswith("Encounter/")
    assert row.follow_ups == 1 and row.next_due_kind is None


def test_a_slip_written_after_the_admission_is_late(with_shiqiao_adt: Loop) -> None:
    """补录: the slip is dated 12-01 20:00, the county admitted the patient at 10:30."""
    loop = with_shiqiao_adt
    text = (ROOT / "fixtures/xml/referral/shiqiao-his/up-slip.xml").read_bytes().decode("gbk")
    late = text.replace("SQ-ZZ-2026-0201", "SQ-ZZ-2026-0299").replace(
        "2026-11-27 09:10:00", "2026-12-01 20:00:00"
    )
    made = loop.ingest(late.encode("gbk"), "shiqiao-his")
    task = next(r for r in made.resources if r.startswith("Task/")).split("/", 1)[1]
    loop.ingest(_adt("a01-admit.hl7", "LATE01"), "county-his")
    row = _rows(loop)[task]
    assert row.backfilled and row.arrived_at == datetime(2026, 12, 1, 2, 30, tzinfo=UTC)
    slips = loop.client.get(
        "/referrals/incomplete", params={"from": "2026-12-01", "to": "2026-12-01"}
    ).json()["rows"]
    assert [(s["slip_number"], s["late"]) for s in slips] == [("SQ-ZZ-2026-0299", True)]
    ledger = loop.client.get("/referrals/ledger", params={"backfilled": "true"}).json()["rows"]
    assert [r["slip_number"] for r in ledger] == ["SQ-ZZ-2026-0299"]
    assert ledger[0]["backfilled"] == "是"

"""The 转诊台账 and the analysis through the real pipeline and the real app (issue 12 §3,
§4): the up-referral's loop (slip, received, accepted, ADT^A01, ADT^A03, discharge
summary, completed) fills the ledger row step by step; the API lists, filters, exports
(CSV / XLSX / HTML, formula-safe) and analyses it; a second receiver's rejection and an
incomplete slip are counted. SQLite; PostgreSQL with ``-m db``.
"""

from __future__ import annotations

import csv
import io
from typing import Any

import openpyxl
from sqlalchemy import select

from adapter.store.models import ReferralLedger
from tests.integration.referral_support import RECEIVER, ROOT, SENDER, status_ops
from tests.integration.test_referral_loop import Loop, _adt, _discharge_summary
from tests.integration.test_referral_loop import loop as loop  # the fixture

PERIOD = {"from": "2026-11-01", "to": "2026-12-31"}


def _row(loop: Loop) -> dict[str, Any]:
    answer = loop.client.get("/referrals/ledger", params=PERIOD)
    assert answer.status_code == 200, answer.text
    rows = [r for r in answer.json()["rows"] if r["task"] == f"Task/{loop.task}"]
    assert len(rows) == 1
    return rows[0]


def _full_loop(loop: Loop) -> None:
    assert loop.patch(RECEIVER, status_ops("received")).status_code == 200
    assert loop.patch(RECEIVER, status_ops("accepted")).status_code == 200
    loop.ingest(_adt("a01-admit.hl7", "LEDG001"), "county-his")
    loop.ingest(_adt("a01-admit.hl7", "LEDG002"), "county-his")  # duplicate
    loop.ingest(_adt("a03-discharge-gbk.hl7", "LEDG003", "gbk"), "county-his")
    loop.ingest(_adt("a01-admit.hl7", "LEDG004"), "county-his")  # out of order
    loop.ingest(_discharge_summary(), "county-emr")
    assert loop.patch(RECEIVER, status_ops("completed")).status_code == 200


def test_the_ledger_row_follows_the_loop(loop: Loop) -> None:
    first = _row(loop)
    assert first["slip_number"] == "SQ-ZZ-2026-0201"
    assert (first["direction"], first["status_code"]) == ("上转", "requested")
    assert first["patient"] == "张*英"  # masked
    assert "张秀英" not in str(first)
    assert first["sender_facility"] == "青山县石桥镇卫生院"
    assert first["diagnosis_code"] == "I25.103"
    assert first["received_at"] is None

    _full_loop(loop)
    row = _row(loop)
    assert (row["status_code"], row["business_status_code"]) == ("completed", "closed")
    for step in ("received_at", "accepted_at", "arrived_at", "admitted_at", "discharged_at"):
        assert row[step], step
    assert row["feedback_document"].startswith(("Composition/", "DocumentReference/"))
    assert row["missing"] == [] or all("住院号" not in m for m in row["missing"])
    # the sender's follow-up is still owed: on the worklist once 5 days pass (scheduler)
    with loop.app.state.session_factory() as session:
        stored = session.get(ReferralLedger, loop.task)
        assert stored is not None and stored.next_due_kind == "follow-up"


def test_filters_week_and_exports(loop: Loop) -> None:
    client = loop.client
    factory = loop.app.state.session_factory
    with factory.begin() as session:  # what a sender typed: a formula
        row = session.scalars(select(ReferralLedger)).one()
        row.reason = '=HYPERLINK("http://x","点击")'
    assert (
        len(client.get("/referrals/ledger", params={**PERIOD, "direction": "up"}).json()["rows"])
        == 1
    )
    assert (
        client.get("/referrals/ledger", params={**PERIOD, "direction": "down"}).json()["rows"] == []
    )
    assert len(client.get("/referrals/ledger", params={**PERIOD, "q": "I25"}).json()["rows"]) == 1
    assert len(client.get("/referrals/ledger", params={"facility": SENDER}).json()["rows"]) == 1
    for params, seen in (
        ({"status": "requested"}, 1),
        ({"status": "accepted"}, 0),
        ({"department": "全科"}, 1),  # the sending department
        ({"department": "心内科"}, 1),  # the receiving department
        ({"department": "骨科"}, 0),
    ):
        found = client.get("/referrals/ledger", params={**PERIOD, **params}).json()["rows"]
        assert len(found) == seen, params
    # the slip of 2026-11-27 (a Friday) is in the week ending that Friday, not the next
    assert len(client.get("/referrals/ledger", params={"week": "2026-11-27"}).json()["rows"]) == 1
    assert client.get("/referrals/ledger", params={"week": "2026-12-04"}).json()["rows"] == []
    assert client.get("/referrals/ledger", params={"week": "2026-11-26"}).status_code == 400

    answer = client.get("/referrals/ledger", params={**PERIOD, "format": "csv"})
    assert answer.status_code == 200
    table = list(csv.reader(io.StringIO(answer.content.decode("utf-8-sig"))))
    assert table[0][:3] == ["转诊单号", "转诊类型", "急诊"]
    reason = table[0].index("转诊原因")
    assert table[1][reason].startswith("'=HYPERLINK")  # neutralised

    answer = client.get("/referrals/ledger", params={**PERIOD, "format": "xlsx"})
    sheet = openpyxl.load_workbook(io.BytesIO(answer.content)).active
    assert sheet is not None
    values = list(sheet.iter_rows(values_only=True))
    assert values[0][0] == "转诊单号" and values[1][0] == "SQ-ZZ-2026-0201"
    assert str(values[1][reason]).startswith("'=")

    page = client.get("/referrals/ledger", params={**PERIOD, "format": "html"}).text
    assert "<th>转诊单号</th>" in page and "张*英" in page
    assert "<script" not in page and "http" not in page.replace("http://x", "")


def test_analysis_and_incomplete_slips(loop: Loop) -> None:
    _full_loop(loop)
    incomplete = (ROOT / "fixtures/xml/referral/county-emr/incomplete.xml").read_bytes()
    loop.ingest(incomplete, "county-emr")
    answer = loop.client.get("/referrals/analysis", params=PERIOD)
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["counts"] == {"up": 1, "down": 1, "same": 0}
    assert result["down_ratio"] == 1.0
    assert result["acceptance_rate"] == 0.5  # the down-slip is not answered yet
    assert result["arrival_rate"] == 1.0
    assert result["feedback_within_deadline_rate"] == 1.0
    assert result["incomplete_slips"] >= 1
    assert result["diagnoses"]["up"]["chapters"][0]["key"].startswith("IX")

    slips = loop.client.get("/referrals/incomplete", params=PERIOD).json()["rows"]
    down = next(s for s in slips if s["direction"] == "down")
    flagged = loop.client.get("/referrals/ledger", params={**PERIOD, "incomplete": "true"})
    assert [r["direction_code"] for r in flagged.json()["rows"]] == ["down"]
    complete = loop.client.get("/referrals/ledger", params={**PERIOD, "incomplete": "false"})
    assert [r["direction_code"] for r in complete.json()["rows"]] == ["up"]
    assert "诊断" in down["missing"] and "住院号" in down["missing"]

    sheet = loop.client.get("/referrals/analysis", params={**PERIOD, "format": "xlsx"})
    rows = list(
        openpyxl.load_workbook(io.BytesIO(sheet.content)).active.iter_rows(values_only=True)  # type: ignore[union-attr]
    )
    assert rows[0] == ("指标", "分组", "数值")
    assert ("down_ratio", None, 1) in rows or ("down_ratio", "", 1) in rows


def test_worklist_by_facility(loop: Loop) -> None:
    from datetime import timedelta

    from adapter.referral.scheduler import run_once

    with loop.app.state.session_factory() as session:
        created = session.get(ReferralLedger, loop.task).created_at  # type: ignore[union-attr]
    run_once(
        loop.app.state.session_factory, loop.app.state.consortium, now=created + timedelta(days=2)
    )
    rows = loop.client.get("/referrals/worklist", params={"facility": RECEIVER}).json()["rows"]
    assert [(r["task"], r["deadline"], r["facility"]) for r in rows] == [
        (f"Task/{loop.task}", "accept", RECEIVER)
    ]
    assert (
        loop.client.get("/referrals/worklist", params={"facility": "liuhe-township-centre"}).json()[
            "rows"
        ]
        == []
    )


def test_the_sender_records_its_follow_up_over_http(loop: Loop) -> None:
    """POST /referrals/{task}/follow-up: the up-referral's follow-up is the sender's; the
    receiver and a third facility are refused naming the rule; the row counts it, the
    follow-up deadline is met and the worklist row of a late one is resolved; audited."""
    from datetime import timedelta

    from adapter.referral.scheduler import run_once
    from adapter.store.audit_log import AuditRecord
    from tests.integration.referral_support import OTHER

    _full_loop(loop)
    factory = loop.app.state.session_factory
    with factory() as session:
        discharged = session.get(ReferralLedger, loop.task).discharged_at  # type: ignore[union-attr]
    run_once(factory, loop.app.state.consortium, now=discharged + timedelta(days=6))
    late = loop.client.get("/referrals/worklist", params={"facility": SENDER}).json()["rows"]
    assert [(r["deadline"], r["facility"]) for r in late] == [("follow-up", SENDER)]

    url = f"/referrals/{loop.task}/follow-up"
    body = {"record": "Encounter/visit-1"}
    receiver = loop.client.post(url, json=body, headers={"X-Facility": RECEIVER})
    assert receiver.status_code == 409, receiver.text
    assert "follow-up-by-sender" in receiver.text
    other = loop.client.post(url, json=body, headers={"X-Facility": OTHER})
    assert other.status_code == 403 and "party-not-involved" in other.text
    assert loop.client.post(url, headers={"X-Facility": "nowhere"}).status_code == 400
    bad = loop.client.post(url, json={"record": "javascript:x"}, headers={"X-Facility": SENDER})
    assert bad.status_code == 400
    unknown = loop.client.post("/referrals/nope/follow-up", headers={"X-Facility": SENDER})
    assert unknown.status_code == 404
    assert _row(loop)["follow_ups"] == 0  # nothing counted by the refusals

    done = loop.client.post(url, json=body, headers={"X-Facility": SENDER})
    assert done.status_code == 200, done.text
    assert done.json()["follow_ups"] == 1
    assert done.json()["follow_up_record"] == "Encounter/visit-1"
    row = _row(loop)
    assert (row["follow_ups"], row["follow_up_record"]) == (1, "Encounter/visit-1")
    assert row["followed_up_at"]
    again = loop.client.post(url, headers={"X-Facility": SENDER})  # a second visit, no record
    assert again.json()["follow_ups"] == 2
    assert _row(loop)["follow_up_record"] == "Encounter/visit-1"
    # the late follow-up resolves its worklist row; nothing more is owed
    assert loop.client.get("/referrals/worklist", params={"facility": SENDER}).json()["rows"] == []
    with factory() as session:
        assert session.get(ReferralLedger, loop.task).next_due_kind is None  # type: ignore[union-attr]
        audited = session.execute(
            select(AuditRecord.action, AuditRecord.facility, AuditRecord.body)
            # action is stored coded (decision 0082): compared as texts, not with LIKE
            .where(AuditRecord.action.in_(("referral.changed", "referral.refused")))
            .order_by(AuditRecord.seq)
        ).all()
    follow_ups = [(a, f) for a, f, body in audited if '"follow-up"' in body]
    assert all(f"Task/{loop.task}" in body for _, _, body in audited)
    assert follow_ups == [
        ("referral.refused", RECEIVER),
        ("referral.refused", OTHER),
        ("referral.changed", SENDER),
        ("referral.changed", SENDER),
    ]

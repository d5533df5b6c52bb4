"""The referral loop end to end (issue 12 §1): the real pipeline, the real app and the
database (SQLite; PostgreSQL with ``-m db``), the example consortium routing by care.

    up-slip 石桥 -> county (shiqiao-his XML)               Task requested
    county: received, accepted (PATCH)                     已接收, 已同意
    ADT^A01 at the county for the patient (county-his)     in-progress / 已入院
    the same A01 again (a new control id)                  nothing new
    ADT^A03                                                 已出院回转
    the A01 once more, after the A03 (out of order)        nothing moves back
    the discharge summary (county-emr 嘉禾 XML)             its Composition in Task.output
    county: completed                                       已关闭, the ServiceRequest completed

and: a rejection by one of two receivers; a cancellation by the sender.
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
from adapter.settings import Settings
from adapter.store import save_resources
from tests.integration.referral_support import (
    OTHER,
    RECEIVER,
    ROOT,
    SENDER,
    UP_SLIP,
    as_facility,
    consortium_by_care,
    outbox_of,
    status_ops,
)

ID_CARD, BORN = "430999196704151244", "19670415"  # 张秀英, the up-slip's patient
ADT = ROOT / "fixtures/hl7v2/adt/county-his"
REASONS = "https://yigongti-fhir-adapter.github.io/fhir/CodeSystem/referral-rejection-reason"


class Loop:
    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.app: Any = client.app
        self.task, self.request = self._slip()

    def ingest(self, raw: bytes, source: str) -> Any:
        result = self.app.state.pipeline.ingest(
            raw, Receipt(source, "cli", received_at=datetime.now(UTC))
        )
        assert result.status.startswith("processed"), result.issues
        return result

    def _slip(self) -> tuple[str, str]:
        result = self.ingest(UP_SLIP.read_bytes(), "shiqiao-his")
        task = next(r for r in result.resources if r.startswith("Task/"))
        request = next(r for r in result.resources if r.startswith("ServiceRequest/"))
        return task.split("/", 1)[1], request.split("/", 1)[1]

    def patch(self, facility: str, ops: list[Any], task: str | None = None) -> Any:
        return self.client.patch(
            f"/fhir/Task/{task or self.task}", json=ops, headers=as_facility(facility)
        )

    def get(self, task: str | None = None) -> dict[str, Any]:
        return self.client.get(f"/fhir/Task/{task or self.task}").json()

    def request_status(self) -> str:
        return self.client.get(f"/fhir/ServiceRequest/{self.request}").json()["status"]


@pytest.fixture
def loop(tmp_path: Path, database_url: str) -> Iterator[Loop]:
    app = create_app(Settings(database_url=database_url, config=consortium_by_care(tmp_path)))
    with TestClient(app) as client:
        yield Loop(client)
    app.state.engine.dispose()


def _adt(name: str, control: str, encoding: str = "utf-8") -> bytes:
    """A county HIS ADT message about 张秀英 (the fixture's patient replaced)."""
    text = (ADT / name).read_bytes().decode(encoding)
    text = text.replace("430999196207071534", ID_CARD).replace("彭^志刚", "张^秀英")
    text = text.replace("|19620707|M|", f"|{BORN}|F|").replace("QSHIS2612010088", control)
    return text.encode(encoding)


def _discharge_summary() -> bytes:
    text = (ROOT / "fixtures/xml/discharge/county-emr/basic.xml").read_text(encoding="utf-8")
    for old, new in (
        ("彭德华", "张秀英"),
        ('代码="1">男', '代码="2">女'),
        ("1955-11-20", "1967-04-15"),
        ("430999195511204579", ID_CARD),
        ("2026-11-06 10:15:00", "2026-12-01 10:30:00"),
        ("2026-11-20 09:00:00", "2026-12-08 09:00:00"),
        ("2026-11-20 15:40:00", "2026-12-08 15:40:00"),
    ):
        assert old in text, old
        text = text.replace(old, new)
    return text.encode("utf-8")


def _state(task: dict[str, Any]) -> tuple[str, str, str]:
    business = (task.get("businessStatus") or {}).get("text", "-")  # the slip's Task: none
    return task["status"], business, task["meta"]["versionId"]


def _outputs(task: dict[str, Any]) -> list[str]:
    return [o["valueReference"]["reference"].split("/", 1)[0] for o in task.get("output", [])]


def _notes(result: Any) -> str:
    return " | ".join(
        str(i.get("diagnostics") if isinstance(i, dict) else i) for i in result.issues
    )


def test_up_referral_to_closed_loop(loop: Loop) -> None:
    assert _state(loop.get()) == ("requested", "-", "1")
    assert loop.patch(RECEIVER, status_ops("received")).status_code == 200
    assert loop.patch(RECEIVER, status_ops("accepted")).status_code == 200
    assert _state(loop.get()) == ("accepted", "已同意", "3")

    admitted = loop.ingest(_adt("a01-admit.hl7", "REF0001"), "county-his")
    assert "moved to in-progress / admitted" in _notes(admitted)
    assert _state(loop.get()) == ("in-progress", "已入院", "4")
    assert _outputs(loop.get()) == ["Encounter"]
    factory = loop.app.state.session_factory
    delivered = {d for d, v in outbox_of(factory, f"Task/{loop.task}") if v == 4}
    assert delivered == {"shiqiao-fhir", "county-hospital-fhir"}  # both parties

    loop.ingest(_adt("a01-admit.hl7", "REF0002"), "county-his")  # the same status again
    assert _state(loop.get()) == ("in-progress", "已入院", "4")

    loop.ingest(_adt("a03-discharge-gbk.hl7", "REF0003", "gbk"), "county-his")
    assert _state(loop.get()) == ("in-progress", "已出院回转", "5")

    late = loop.ingest(_adt("a01-admit.hl7", "REF0004"), "county-his")  # out of order
    assert "refused by rule business-status-backwards" in _notes(late)
    assert _state(loop.get()) == ("in-progress", "已出院回转", "5")

    loop.ingest(_discharge_summary(), "county-emr")
    task = loop.get()
    assert _state(task) == ("in-progress", "已出院回转", "6")
    assert "Composition" in _outputs(task)
    assert loop.request_status() == "active"

    closed = loop.patch(RECEIVER, status_ops("completed"))
    assert closed.status_code == 200, closed.text
    assert _state(closed.json()) == ("completed", "已关闭", "7")
    assert loop.request_status() == "completed"
    after = loop.patch(SENDER, status_ops("cancelled"))
    assert after.status_code == 409
    assert "final-completed" in after.json()["issue"][0]["diagnostics"]


def test_rejection_by_one_of_two_receivers(loop: Loop) -> None:
    # the sender refers the same patient to a second receiver (柳河): a Task of its own
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
    second = {
        **{k: v for k, v in loop.get().items() if k not in ("meta", "identifier")},
        "id": "second-receiver",
        "owner": {"reference": "Organization/liuhe-township-centre"},
    }
    made = loop.client.put(
        "/fhir/Task/second-receiver", json=second, headers={"X-Facility": SENDER}
    )
    assert made.status_code == 201, made.text
    assert _state(made.json()) == ("requested", "已申请", "1")
    # the receiver itself cannot make a Task of the referral
    other = {**second, "id": "third"}
    refused = loop.client.put("/fhir/Task/third", json=other, headers={"X-Facility": OTHER})
    assert refused.status_code == 403

    rejected = loop.patch(RECEIVER, status_ops("rejected", reason="bed-full"))
    assert rejected.status_code == 200, rejected.text
    assert rejected.json()["statusReason"]["coding"][0] == {
        "system": REASONS,
        "code": "bed-full",
        "display": "床位已满",
    }
    assert loop.request_status() == "active"  # 柳河's Task is open
    assert loop.patch(OTHER, status_ops("accepted"), "second-receiver").status_code == 200
    assert loop.request_status() == "active"
    # 柳河's acceptance goes to both parties of its Task (routing by care)
    rows = outbox_of(factory, "Task/second-receiver")
    assert {d for d, v in rows if v == 2} >= {"liuhe-fhir", "shiqiao-fhir"}
    turned = loop.patch(OTHER, status_ops("rejected", reason="out-of-scope"), "second-receiver")
    assert turned.status_code == 200
    assert loop.request_status() == "revoked"  # no receiver left


def test_cancellation_by_the_sender(loop: Loop) -> None:
    received = loop.patch(RECEIVER, status_ops("received"))
    assert received.status_code == 200, received.text
    cancelled = loop.patch(SENDER, status_ops("cancelled"))
    assert cancelled.status_code == 200
    assert _state(cancelled.json()) == ("cancelled", "已取消", "3")
    assert loop.request_status() == "revoked"
    late = loop.patch(RECEIVER, status_ops("accepted"))
    assert late.status_code == 409
    assert "accepted-from" in late.json()["issue"][0]["diagnostics"]
    # an arrival by message after the cancellation moves nothing
    loop.ingest(_adt("a01-admit.hl7", "REF0009"), "county-his")
    assert _state(loop.get()) == ("cancelled", "已取消", "3")


def test_an_admission_outside_the_window_moves_nothing(loop: Loop) -> None:
    # the slip was written 2026-11-27; an admission 2027-02-01 is past the 30-day window
    raw = _adt("a01-admit.hl7", "REF0010").replace(b"|20261201103000", b"|20270201103000")
    result = loop.ingest(raw, "county-his")
    assert "referral Task" not in _notes(result)
    assert _state(loop.get()) == ("requested", "-", "1")
    # within the window it would (the same message, dated inside)
    loop.ingest(_adt("a01-admit.hl7", "REF0011"), "county-his")
    assert _state(loop.get()) == ("in-progress", "已入院", "2")


def test_a_down_referral_closes_after_the_follow_up(loop: Loop) -> None:
    raw = (ROOT / "fixtures/xml/referral/county-emr/down-slip.xml").read_bytes()
    result = loop.ingest(raw, "county-emr")
    task = next(r for r in result.resources if r.startswith("Task/")).split("/", 1)[1]
    assert loop.patch(SENDER, status_ops("accepted"), task).status_code == 200  # 石桥 receives
    assert loop.patch(SENDER, status_ops("in-progress", "arrived"), task).status_code == 200
    early = loop.patch(SENDER, status_ops("completed"), task)
    assert early.status_code == 409
    assert "down-referral-follow-up" in early.json()["issue"][0]["diagnostics"]
    followed = loop.patch(SENDER, status_ops("in-progress", "followed-up"), task)
    assert followed.status_code == 200, followed.text
    closed = loop.patch(SENDER, status_ops("completed"), task)
    assert closed.status_code == 200, closed.text
    assert _state(closed.json())[:2] == ("completed", "无反馈关闭")  # no Encounter, no note


def test_a_slip_outside_the_allowed_paths_is_kept_and_flagged(loop: Loop) -> None:
    # the county's down-slip to 石桥, written as an up-referral (上转 to a lower level)
    raw = (ROOT / "fixtures/xml/referral/county-emr/down-slip.xml").read_text(encoding="utf-8")
    result = loop.ingest(raw.replace("<转诊方向>下转<", "<转诊方向>上转<").encode(), "county-emr")
    assert result.status == "processed-with-warnings"
    assert "referral outside the allowed paths: 上转 from qingshan-county-hospital" in _notes(
        result
    )
    request = next(r for r in result.resources if r.startswith("ServiceRequest/"))
    flag = "https://yigongti-fhir-adapter.github.io/fhir/CodeSystem/referral-flag"
    found = loop.client.get(
        "/fhir/ServiceRequest", params={"_tag": f"{flag}|outside-allowed-paths"}
    ).json()
    assert [e["fullUrl"].rsplit("/", 2)[-2:] for e in found["entry"]] == [request.split("/", 1)]
    assert loop.request_status() == "active"  # the up-slip of the fixture is not flagged


def test_the_down_slip_answers_the_up_referral(loop: Loop) -> None:
    """The county's down-slip (回转单, county-emr) names the up-slip it answers: the
    up-referral's Task is discharged with the down-slip's original as feedback, and the
    loop can close with evidence (the Encounter of the admission and that document)."""
    assert loop.patch(RECEIVER, status_ops("accepted")).status_code == 200
    loop.ingest(_adt("a01-admit.hl7", "REF0020"), "county-his")
    assert _state(loop.get()) == ("in-progress", "已入院", "3")
    raw = (ROOT / "fixtures/xml/referral/county-emr/down-slip.xml").read_bytes()
    answer = loop.ingest(raw, "county-emr")
    assert f"referral Task/{loop.task} moved to in-progress / discharged" in _notes(answer)
    task = loop.get()
    assert _state(task) == ("in-progress", "已出院回转", "4")
    assert _outputs(task) == ["Encounter", "DocumentReference", "ServiceRequest"]
    loop.ingest(raw, "county-emr")  # the same down-slip again: recognised, nothing new
    assert loop.get()["meta"]["versionId"] == "4"
    closed = loop.patch(RECEIVER, status_ops("completed"))
    assert _state(closed.json()) == ("completed", "已关闭", "5")

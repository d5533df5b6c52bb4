"""One ``delivery.delivered`` audit record per message and patient of a delivered batch
(decision 0065), with every delivered resource version named in it: the disclosure report,
the audit search, the AuditEvent resource and the hash chain still say what was sent to
whom, and a patient's report never names another patient's resources."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from adapter.audit.disclosures import disclosures
from adapter.audit.resource import audit_event
from adapter.audit.search import search_records
from adapter.delivery.settlement import audit_events
from adapter.pipeline import Receipt
from adapter.store.audit_log import AuditRecord
from adapter.store.outbox import OutboxRow, Settlement
from tests.audit.audit_support import check
from tests.integration.connector_helpers import example_pipeline
from tests.integration.delivery_receiver import Receiver
from tests.integration.delivery_support import DEST, queue_message, receiving, worker

ROOT = Path(__file__).resolve().parents[2]
TWO_ORDERS = ROOT / "fixtures" / "hl7v2" / "oru" / "std-hl7v2" / "two-orders.hl7"
CBC = ROOT / "fixtures" / "hl7v2" / "oru" / "shiqiao-lis" / "cbc-18-st.hl7"
AT = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from receiving()


def _row(oid: int, rid: str, patient: str | None, message: str | None, **kw: Any) -> OutboxRow:
    return OutboxRow(
        id=oid,
        destination=kw.get("destination", DEST),
        resource_type="Observation",
        resource_id=rid,
        version_id=kw.get("version", 1),
        patient_key=patient,
        order_key=patient or f"Observation/{rid}",
        state="in-flight",  # type: ignore[arg-type]
        attempts=0,
        next_attempt_at=AT,
        created_at=AT,
        last_error=None,
        message_id=message,
        claimed_by="w1",
        claimed_until=AT,
        first_attempt_at=None,
        last_attempt_at=None,
        delivered_at=None,
        last_status=None,
        sent_version_id=None,
        sequence=kw.get("sequence"),
    )


def _sent(row: OutboxRow, outcome: str = "delivered", **kw: Any) -> Settlement:
    return Settlement(
        row,
        outcome,
        AT,
        status=kw.get("status", "200"),
        duration_ms=kw.get("ms", 12.4),
        sent_version=kw.get("sent", row.version_id),
        cause=kw.get("cause"),
    )


def test_a_batch_of_one_message_and_patient_is_one_record_naming_every_row() -> None:
    rows = [_row(i, f"o{i}", "Patient/p1", "m1") for i in (7, 8, 9)]
    settled = [_sent(rows[0]), _sent(rows[1], status="201", ms=3.6), _sent(rows[2], sent=4)]
    events = audit_events(settled, worker="w1", sequences={7: 101, 8: 102})
    assert len(events) == 1
    event = events[0]
    assert (event.action, event.outcome, event.actor) == (
        "delivery.delivered",
        "success",
        "worker:w1",
    )
    assert event.subject == "outbox/7,8,9"
    # the version each row sent (row 9 sent version 4, a later one than it was queued for)
    assert event.entities == (
        "Observation/o7/_history/1",
        "Observation/o8/_history/1",
        "Observation/o9/_history/4",
    )
    assert event.patients == ("Patient/p1",) and event.message_id == "m1"
    # sequence:status:ms of each row, in the same order; no common status
    assert event.detail == {
        "destination": DEST,
        "status": None,
        "rows": "101:200:12 102:201:4 -:200:12",
    }


def test_patients_messages_destinations_and_failures_are_kept_apart() -> None:
    a1, a2 = _row(1, "a1", "Patient/pa", "m1"), _row(2, "a2", "Patient/pa", "m1")
    b1 = _row(3, "b1", "Patient/pb", "m1")  # the same message, another patient
    c1 = _row(4, "c1", "Patient/pa", "m2")  # the same patient, another message
    d1 = _row(5, "d1", "Patient/pa", "m1", destination="other")
    r1 = _row(6, "r1", "Patient/pa", "m1")
    n1 = _row(7, "n1", None, "m1")  # about no patient
    settled = [
        _sent(a1),
        _sent(b1),
        _sent(r1, "retry", status="503"),
        _sent(a2),
        _sent(c1),
        _sent(d1),
        _sent(n1),
        _sent(_row(8, "x", "Patient/pa", "m1"), "dead", status="400", cause="refused"),
    ]
    events = audit_events(settled, worker="w1")
    shape = [(e.action, e.subject, e.patients, e.detail.get("destination")) for e in events]
    assert shape == [
        ("delivery.delivered", "outbox/1,2", ("Patient/pa",), DEST),
        ("delivery.delivered", "outbox/3", ("Patient/pb",), DEST),
        ("delivery.retry", "outbox/6", ("Patient/pa",), DEST),
        ("delivery.delivered", "outbox/4", ("Patient/pa",), DEST),
        ("delivery.delivered", "outbox/5", ("Patient/pa",), "other"),
        ("delivery.delivered", "outbox/7", (), DEST),
        ("delivery.dead", "outbox/8", ("Patient/pa",), DEST),
    ]
    assert events[0].detail["status"] == "200"  # every row got the same answer
    assert events[2].detail == {"destination": DEST, "status": "503", "cause": None}
    assert events[6].detail["cause"] == "refused"


def test_the_same_resource_version_twice_makes_a_second_record() -> None:
    first, again = _row(1, "a", "Patient/p", "m"), _row(2, "a", "Patient/p", "m")
    events = audit_events([_sent(first), _sent(again)], worker="w1")
    assert [(e.subject, e.entities) for e in events] == [
        ("outbox/1", ("Observation/a/_history/1",)),
        ("outbox/2", ("Observation/a/_history/1",)),
    ]


def _ingest_and_queue(factory: sessionmaker[Session]) -> dict[str, tuple[str, set[str]]]:
    """Two lab messages of two patients, every stored resource queued for DEST as routing
    would; message id -> (patient, resource versions)."""
    pipeline = example_pipeline(factory)
    got = [
        pipeline.ingest(TWO_ORDERS.read_bytes(), Receipt("std-hl7v2", "cli")),
        pipeline.ingest(CBC.read_bytes(), Receipt("shiqiao-lis", "cli")),
    ]
    out: dict[str, tuple[str, set[str]]] = {}
    with factory.begin() as session:
        for result in got:
            assert result.accepted and result.message_id
            stored = queue_message(session, result.message_id)
            patients = {p for *_, p in stored if p}
            assert len(patients) == 1
            out[result.message_id] = (
                patients.pop(),
                {f"{t}/{i}/_history/{v}" for t, i, v, p in stored if p},
            )
    return out


def test_a_delivered_batch_is_one_record_per_message_and_every_reader_agrees(
    session_factory: sessionmaker[Session], receiver: Receiver
) -> None:
    sent = _ingest_and_queue(session_factory)
    (m1, (p1, r1)), (m2, (p2, r2)) = sent.items()
    assert p1 != p2 and len(r1) > 1 and len(r2) > 1
    # a transaction Bundle destination: a patient's queued rows go in one request
    reports = worker(
        session_factory, receiver.base_url, bundle="transaction", batch_size=100
    ).drain()
    assert len(reports) == 1 and reports[0].tally.delivered == reports[0].claimed
    with session_factory() as session:
        delivered = (
            session.execute(
                select(AuditRecord)
                .where(AuditRecord.action == "delivery.delivered")
                .order_by(AuditRecord.seq)
            )
            .scalars()
            .all()
        )
        # one record per message for its patient's rows; the Organization of each (the
        # first message of a sending lab queues it: about no patient) has one of its own
        bodies = {
            r.message_id: (r, b) for r in delivered if (b := orjson.loads(r.body))["patients"]
        }
        assert set(bodies) == {m1, m2}
        others = [b for r in delivered if not (b := orjson.loads(r.body))["patients"]]
        assert [o["entities"][0].split("/")[0] for o in others] == ["Organization"] * 2
        assert len(delivered) == 4
        for message, (patient, resources) in sent.items():
            record, body = bodies[message]
            assert body["patients"] == [patient]
            assert set(body["entities"]) == resources  # each delivered version, only these
            ids = body["subject"].removeprefix("outbox/").split(",")
            assert len(ids) == len(body["entities"]) == len(body["detail"]["rows"].split())
            # the disclosure report: each resource of this patient, none of the other's
            report = disclosures(session, patient)
            assert [d["action"] for d in report] == ["delivery.delivered"]
            assert report[0]["to"] == DEST and set(report[0]["resources"]) == set(body["entities"])
            other = r2 if message == m1 else r1
            assert not set(report[0]["resources"]) & other
            # the audit search finds it by any one of its resources, and by the patient
            one = sorted(resources)[-1]
            total, found = search_records(
                session,
                [("entity", one.split("/_history/")[0]), ("subtype", "delivery.delivered")],
                count=10,
                offset=0,
            )
            assert total == 1 and found[0].seq == record.seq
            total, page = search_records(session, [("patient", patient)], count=50, offset=0)
            assert [r.action for r in page] == ["delivery.delivered", "message.stored"]
            # the AuditEvent resource names the patient and every resource sent (BALP)
            event = audit_event(record.seq, record.body)
            named = {e["what"].get("reference") for e in event["entity"] if "what" in e}
            assert named >= {patient, *resources}
            assert event["meta"]["profile"][0].endswith("PrivacyDisclosure.Source")
    assert check(session_factory).ok

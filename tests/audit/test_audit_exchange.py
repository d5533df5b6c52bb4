"""Every exchange leaves its records: one correlation id (the caller's X-Request-Id) from
receipt through translation and storage to delivery and replay; FHIR reads and searches
record which resource versions were disclosed to whom, never their content."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from tests.audit.audit_support import ROOT, check, records
from tests.integration.delivery_receiver import Receiver
from tests.integration.delivery_support import DEST, queue_message, receiving, worker

CBC = ROOT / "fixtures" / "hl7v2" / "oru" / "shiqiao-lis" / "cbc-18-st.hl7"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from receiving()


def _of(factory: sessionmaker[Session], **where: Any) -> list[dict[str, Any]]:
    found = records(factory)
    return [r for r in found if all(r[k] == v for k, v in where.items())]


def test_one_correlation_id_from_receipt_to_delivery_and_replay(
    client: TestClient, session_factory: sessionmaker[Session], receiver: Receiver
) -> None:
    answer = client.post(
        "/ingest",
        content=CBC.read_bytes(),
        headers={"X-Source-System": "shiqiao-lis", "X-Request-Id": "trace-42"},
    )
    assert answer.status_code in (200, 202), answer.text
    assert answer.headers["x-request-id"] == "trace-42"
    message_id = answer.json()["message_id"]
    # the county hospital's destination is disabled in the example consortium: queue the
    # message's resources for the test receiver, as routing would for an enabled one
    with session_factory.begin() as session:
        queue_message(session, message_id)
    worker(session_factory, receiver.base_url).drain(max_batches=3)
    delivered = _of(session_factory, action="delivery.delivered")
    assert delivered, "nothing was delivered"
    outbox_id = orjson.loads(delivered[0]["body"])["subject"].removeprefix("outbox/")
    replayed = client.post(f"/deliveries/{outbox_id}/replay")
    assert replayed.status_code == 200, replayed.text

    trail = _of(session_factory, correlation_id="trace-42")
    actions = [r["action"] for r in trail]
    assert actions[:3] == ["message.received", "message.translated", "message.stored"]
    assert {"delivery.delivered", "delivery.replayed"} <= set(actions)
    assert all(r["message_id"] == message_id for r in trail)
    receipt = orjson.loads(trail[0]["body"])
    assert (receipt["client"], receipt["channel"]) == ("anonymous", "http")
    assert receipt["address"].startswith("testclient:")
    assert receipt["actor"] == "source:shiqiao-lis" and receipt["facility"]
    translated = orjson.loads(trail[1]["body"])
    assert translated["detail"]["mapping"].startswith("yunyi-lis")
    stored = orjson.loads(trail[2]["body"])
    assert stored["patients"] and all(p.startswith("Patient/") for p in stored["patients"])
    assert all("/_history/" in e for e in stored["entities"])
    sent = orjson.loads(delivered[0]["body"])
    assert sent["detail"]["destination"] == DEST and sent["entities"][0] in stored["entities"]
    assert check(session_factory).ok


def test_reads_and_searches_record_what_was_disclosed_to_whom(
    client: TestClient, session_factory: sessionmaker[Session]
) -> None:
    posted = client.post(
        "/ingest", content=CBC.read_bytes(), headers={"X-Source-System": "shiqiao-lis"}
    )
    made = posted.headers["x-request-id"]  # none given: one is made and returned
    assert len(made) == 36
    patient = next(r for r in posted.json()["resources"] if r.startswith("Patient/"))
    found = client.get(
        "/fhir/Observation", params={"patient": patient}, headers={"X-Request-Id": "x" * 65}
    )
    assert found.status_code == 200 and found.json()["entry"]
    assert found.headers["x-request-id"] != "x" * 65  # unusable: replaced, not stored
    read = client.get(f"/fhir/{patient}")
    assert read.status_code == 200

    search = _of(session_factory, action="fhir.search")[-1]
    body = orjson.loads(search["body"])
    assert body["patients"] == [patient]
    assert len(body["entities"]) == len(found.json()["entry"])
    assert body["detail"]["params"] == "patient"  # the names, never the values
    assert body["client"] == "anonymous" and body["correlation"] == search["request_id"]
    reads = _of(session_factory, action="fhir.read")
    assert orjson.loads(reads[-1]["body"])["entities"] == [f"{patient}/_history/1"]
    # no clinical content: the patient's name and the results are in none of the records
    family = read.json()["name"][0].get("family")
    everything = " ".join(r["body"] for r in records(session_factory))
    assert family and family not in everything
    assert "valueQuantity" not in everything


def test_the_adapter_start_is_recorded_with_its_configuration(
    client: TestClient, session_factory: sessionmaker[Session]
) -> None:
    loaded = _of(session_factory, action="config.loaded")
    assert len(loaded) == 1
    detail = orjson.loads(loaded[0]["body"])["detail"]
    assert detail["config"] == "consortium.yaml" and len(detail["config_sha256"]) == 64
    assert "shiqiao-lis=yunyi-lis" in detail["mappings"]


def _refuse_audit(engine: Engine) -> None:
    """The database really refuses every new audit record (a full disk would, or a
    revoked grant): a trigger on both databases."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(
                text(
                    "CREATE FUNCTION test_refuse_audit() RETURNS trigger LANGUAGE plpgsql AS "
                    "$$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$"
                )
            )
            conn.execute(
                text(
                    "CREATE TRIGGER test_refuse_audit BEFORE INSERT ON audit_record "
                    "FOR EACH ROW EXECUTE FUNCTION test_refuse_audit()"
                )
            )
        else:
            conn.execute(
                text(
                    "CREATE TRIGGER test_refuse_audit BEFORE INSERT ON audit_record "
                    "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
                )
            )


def _accept_audit(engine: Engine) -> None:
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("DROP TRIGGER IF EXISTS test_refuse_audit ON audit_record"))
            conn.execute(text("DROP FUNCTION IF EXISTS test_refuse_audit()"))
        else:
            conn.execute(text("DROP TRIGGER IF EXISTS test_refuse_audit"))


def test_a_disclosure_that_cannot_be_recorded_is_not_answered(
    client: TestClient, session_factory: sessionmaker[Session], engine: Engine
) -> None:
    """The record of a search or read is committed before the answer (on PostgreSQL in
    the request's own transaction): when the database refuses it, the caller gets an
    error and no results, and the log stays whole; once it accepts again, so do reads."""
    posted = client.post(
        "/ingest", content=CBC.read_bytes(), headers={"X-Source-System": "shiqiao-lis"}
    )
    patient = next(r for r in posted.json()["resources"] if r.startswith("Patient/"))
    before = len(records(session_factory))
    _refuse_audit(engine)
    try:
        # the same running app (no second start-up: that is an audited event too)
        failing = TestClient(client.app, raise_server_exceptions=False)
        found = failing.get("/fhir/Observation", params={"patient": patient})
        read = failing.get(f"/fhir/{patient}")
        for answer in (found, read):
            assert answer.status_code == 500
            assert "entry" not in answer.json() and "name" not in answer.json()
    finally:
        _accept_audit(engine)
    assert len(records(session_factory)) == before
    again = client.get("/fhir/Observation", params={"patient": patient})
    assert again.status_code == 200 and again.json()["entry"]
    assert len(records(session_factory)) == before + 1
    assert check(session_factory).ok

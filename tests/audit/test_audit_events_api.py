"""The audit log as FHIR AuditEvent: BALP shapes, search by patient, agent, date, type,
outcome and correlation id; 405 on every change (the attempt itself recorded); reading the
log is recorded once per request."""

from __future__ import annotations

import orjson
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from tests.audit.audit_support import records
from tests.audit.test_audit_exchange import CBC

BALP = "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit."


def _ingest(client: TestClient, request_id: str) -> dict:
    answer = client.post(
        "/ingest",
        content=CBC.read_bytes(),
        headers={"X-Source-System": "shiqiao-lis", "X-Request-Id": request_id},
    )
    assert answer.status_code in (200, 202), answer.text
    return answer.json()


def _events(client: TestClient, **params: str) -> list[dict]:
    found = client.get("/fhir/AuditEvent", params=params)
    assert found.status_code == 200, found.text
    return [e["resource"] for e in found.json().get("entry", [])]


def test_audit_events_are_searchable_and_shaped_after_balp(
    client: TestClient, session_factory: sessionmaker[Session]
) -> None:
    stored = _ingest(client, "trace-7")
    patient = next(r for r in stored["resources"] if r.startswith("Patient/"))
    assert client.get(f"/fhir/{patient}").status_code == 200

    trail = _events(client, **{"correlation-id": "trace-7"})
    subtypes = [e["subtype"][-1]["code"] for e in trail]
    assert subtypes == ["message.stored", "message.translated", "message.received"]  # newest first
    create = trail[0]
    assert create["meta"]["profile"] == [BALP + "PatientCreate"]
    assert create["type"]["code"] == "rest" and create["action"] == "C"
    assert create["outcome"] == "0"
    assert any(
        e.get("type", {}).get("code") == "XrequestId"
        and e["what"]["identifier"]["value"] == "trace-7"
        for e in create["entity"]
    )
    assert {"reference": patient} in [e["what"] for e in create["entity"] if "what" in e]

    by_patient = _events(client, patient=patient)
    assert {e["subtype"][-1]["code"] for e in by_patient} == {"message.stored", "fhir.read"}
    read = next(e for e in by_patient if e["subtype"][-1]["code"] == "fhir.read")
    assert read["meta"]["profile"] == [BALP + "PatientRead"]
    assert read["agent"][0]["who"]["identifier"]["value"] == "anonymous"
    assert read["agent"][0]["requestor"] is True

    assert {e["subtype"][-1]["code"] for e in _events(client, agent="source:shiqiao-lis")} == {
        "message.received",
        "message.translated",
        "message.stored",
    }
    assert _events(client, type="rest", subtype="fhir.read")[0]["id"] == read["id"]
    assert _events(client, outcome="8") == []
    day = create["recorded"][:10]
    assert len(_events(client, date=f"ge{day}", subtype="message.stored")) == 1
    assert _events(client, date="lt2000-01-01") == []
    one = client.get(f"/fhir/AuditEvent/{create['id']}")
    assert one.status_code == 200 and one.json() == create
    assert client.get("/fhir/AuditEvent/999999").status_code == 404
    assert client.get("/fhir/AuditEvent", params={"name": "x"}).status_code == 400


def test_the_audit_log_cannot_be_changed_through_the_api(
    client: TestClient, session_factory: sessionmaker[Session]
) -> None:
    _ingest(client, "trace-8")
    for method, path in (
        ("PUT", "/fhir/AuditEvent/1"),
        ("DELETE", "/fhir/AuditEvent/1"),
        ("PATCH", "/fhir/AuditEvent/1"),
        ("POST", "/fhir/AuditEvent"),
        ("DELETE", "/fhir/AuditEvent"),
    ):
        answer = client.request(method, path, content=b"{}")
        assert answer.status_code == 405, (method, path)
        assert answer.json()["resourceType"] == "OperationOutcome"
    refused = [r for r in records(session_factory) if r["action"] == "audit.refused"]
    assert len(refused) == 5
    assert orjson.loads(refused[0]["body"])["detail"]["method"] == "PUT"
    assert records(session_factory)[0]["action"] == "config.loaded"  # record 1 untouched


def test_reading_the_audit_log_is_recorded_once_per_request(
    client: TestClient, session_factory: sessionmaker[Session]
) -> None:
    _ingest(client, "trace-9")
    before = len(records(session_factory))
    assert len(_events(client)) == before
    assert len(_events(client)) == before + 1  # the first search's own record, no more
    after = records(session_factory)
    assert [r["action"] for r in after[before:]] == ["audit.read", "audit.read"]

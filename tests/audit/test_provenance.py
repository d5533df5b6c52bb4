"""Provenance: every stored resource version traces back to the message that made it, kept
as received (served as Binary, sha256 checked), its source system, the adapter, and the
mapping set (folder and fingerprint) that translated it."""

from __future__ import annotations

import base64
import hashlib

from fastapi.testclient import TestClient

from tests.audit.audit_support import ROOT

ORU = ROOT / "fixtures" / "hl7v2" / "oru" / "std-hl7v2"


def _post(client: TestClient, name: str) -> dict:
    answer = client.post(
        "/ingest", content=(ORU / name).read_bytes(), headers={"X-Source-System": "std-hl7v2"}
    )
    assert answer.status_code in (200, 202), answer.text
    return answer.json()


def _provenances(client: TestClient, **params: str) -> list[dict]:
    found = client.get("/fhir/Provenance", params=params)
    assert found.status_code == 200, found.text
    return [e["resource"] for e in found.json().get("entry", [])]


def test_each_version_traces_to_the_message_that_made_it(client: TestClient) -> None:
    original = _post(client, "coag-correction_original.hl7")
    corrected = _post(client, "coag-correction_corrected.hl7")
    report = next(r for r in corrected["resources"] if r.startswith("DiagnosticReport/"))

    traced = _provenances(client, target=report)
    by_message = {p["id"]: p for p in traced}
    assert set(by_message) == {original["message_id"], corrected["message_id"]}
    first, second = by_message[original["message_id"]], by_message[corrected["message_id"]]
    assert {"reference": f"{report}/_history/1"} in first["target"]
    assert {"reference": f"{report}/_history/2"} in second["target"]
    assert first["recorded"] and second["policy"][0].startswith(
        "urn:yigongti-fhir-adapter:mapping:"
    )
    roles = [a["type"]["coding"][0]["code"] for a in second["agent"]]
    assert roles == ["author", "assembler"]
    assert second["agent"][0]["who"]["identifier"]["value"] == "std-hl7v2"

    # the entity is the message as received, its bytes served and matching the sha256
    entity = second["entity"][0]
    assert entity["role"] == "source"
    binary = client.get(f"/fhir/{entity['what']['reference']}")
    assert binary.status_code == 200 and binary.json()["resourceType"] == "Binary"
    raw = base64.b64decode(binary.json()["data"])
    assert raw == (ORU / "coag-correction_corrected.hl7").read_bytes()
    assert hashlib.sha256(raw).hexdigest() == entity["what"]["identifier"]["value"]

    patient = next(r for r in corrected["resources"] if r.startswith("Patient/"))
    # the correction left the Patient as it was: only the first message made a version of it
    assert [p["id"] for p in _provenances(client, patient=patient)] == [original["message_id"]]
    assert client.get("/fhir/Binary/no-such-message").status_code == 404


def test_a_message_that_changes_nothing_makes_no_new_provenance(client: TestClient) -> None:
    first = _post(client, "coag-correction_original.hl7")
    again = client.post(
        "/ingest",
        content=(ORU / "coag-correction_original.hl7").read_bytes() + b"\r",
        headers={"X-Source-System": "std-hl7v2"},
    ).json()
    assert again["message_id"] != first["message_id"]
    report = next(r for r in first["resources"] if r.startswith("DiagnosticReport/"))
    assert [p["id"] for p in _provenances(client, target=report)] == [first["message_id"]]

"""GET /audit/disclosures: the per-patient disclosure report as an API (PIPL requests).

One person is known at two facilities (the same national ID sent by the county hospital
and the Shiqiao centre: the patient index links the two records). Reads of either record
show in the report asked about either record; ``person=false`` narrows it to one record;
CSV for a spreadsheet; with authentication on, only the auditor may ask."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from fastapi.testclient import TestClient

from tests.api.auth_helpers import auth_client
from tests.identity.hl7 import national_id, oru

NID = national_id("430999", "19610203", "071")


def _ingest(client: TestClient, raw: bytes, source: str, **headers: str) -> str:
    answer = client.post(
        "/ingest",
        content=raw,
        headers={"X-Source-System": source, "Content-Type": "x-application/hl7-v2+er7", **headers},
    )
    assert answer.status_code == 202, answer.text
    return next(r for r in answer.json()["resources"] if r.startswith("Patient/"))


def test_the_report_covers_the_person_s_records(client: TestClient) -> None:
    county = _ingest(
        client,
        oru(name="邓桂芳", birth="19610203", sex="F", nid=NID, local="C61", card="JK61"),
        "std-hl7v2",
    )
    township = _ingest(
        client,
        oru(name="邓桂芳", birth="19610203", sex="F", local="S61", card="JK61"),
        "shiqiao-lis",
    )
    assert county != township
    assert client.get(f"/fhir/{county}").status_code == 200
    assert client.get("/fhir/Observation", params={"patient": township}).status_code == 200

    whole = client.get("/audit/disclosures", params={"patient": county})
    assert whole.status_code == 200, whole.text
    body = whole.json()
    assert set(body["records"]) == {county, township}
    actions = [e["action"] for e in body["entries"]]
    assert actions == ["fhir.read", "fhir.search"]
    assert body["entries"][0]["resources"] == [f"{county}/_history/1"]
    assert body["entries"][1]["results"] >= 1

    one = client.get("/audit/disclosures", params={"patient": township, "person": "false"})
    assert [e["action"] for e in one.json()["entries"]] == ["fhir.search"]

    every = client.get("/audit/disclosures", params={"patient": county, "all": "true"}).json()
    assert len(every["entries"]) > len(body["entries"])  # receipts and stores too

    sheet = client.get("/audit/disclosures", params={"patient": county, "_format": "csv"})
    assert sheet.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(sheet.content.decode("utf-8-sig"))))
    assert rows[0][:3] == ["when", "action", "outcome"] and len(rows) == 3
    assert "邓" not in sheet.text and NID not in sheet.text  # no name, no ID in the report

    later = client.get(
        "/audit/disclosures", params={"patient": county, "since": "2999-01-01"}
    ).json()
    assert later["entries"] == []


def test_bad_requests_are_located(client: TestClient) -> None:
    missing = client.get("/audit/disclosures")
    assert missing.status_code == 400 and "patient" in missing.text
    bad = client.get("/audit/disclosures", params={"patient": "Patient/x", "since": "soon"})
    assert bad.status_code == 400 and "since" in bad.text
    flag = client.get("/audit/disclosures", params={"patient": "Patient/x", "all": "yes"})
    assert flag.status_code == 400


def test_only_the_auditor_may_ask(database_url: str, tmp_path: Path) -> None:
    with auth_client(database_url, tmp_path) as (_app, tokens):
        client = tokens.client
        asked = {"patient": "Patient/anyone"}
        assert client.get("/audit/disclosures", params=asked).status_code == 401
        for who in ("county-reader", "county-operator", "county-admin", "consortium-admin"):
            answer = client.get("/audit/disclosures", params=asked, headers=tokens.headers(who))
            assert answer.status_code == 403, who
        answer = client.get(
            "/audit/disclosures", params=asked, headers=tokens.headers("county-auditor")
        )
        assert answer.status_code == 200 and answer.json()["entries"] == []

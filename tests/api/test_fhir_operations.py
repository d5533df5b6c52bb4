"""Patient/$everything, Composition/$document and $validate."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from adapter.api.app import create_app
from adapter.settings import Settings
from adapter.store import save_resources

ROOT = Path(__file__).resolve().parents[2]
DISCHARGE = ROOT / "fixtures" / "xml" / "discharge" / "county-emr" / "basic.xml"
T1 = datetime(2026, 6, 1, tzinfo=UTC)
T2 = datetime(2026, 7, 1, tzinfo=UTC)


def obs(oid: str, patient: str, when: str | None) -> dict:
    body = {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "code": {"text": "血红蛋白"},
        "subject": {"reference": f"Patient/{patient}"},
        "performer": [{"reference": "Practitioner/dr1"}],
    }
    if when:
        body["effectiveDateTime"] = when
    return body


FIRST = [  # written at T1
    {"resourceType": "Patient", "id": "p1", "gender": "female"},
    {"resourceType": "Patient", "id": "p2", "gender": "male"},
    {"resourceType": "Practitioner", "id": "dr1", "name": [{"family": "张"}]},
    {"resourceType": "Organization", "id": "org1", "name": "青山县人民医院"},
    {
        "resourceType": "Encounter",
        "id": "e1",
        "status": "finished",
        "class": {"code": "IMP"},
        "subject": {"reference": "Patient/p1"},
        "serviceProvider": {"reference": "Organization/org1"},
        "period": {"start": "2026-05-01T08:00:00+08:00", "end": "2026-05-05T08:00:00+08:00"},
    },
    obs("o1", "p1", "2026-05-02T09:00:00+08:00"),
    obs("o3", "p2", "2026-05-02T09:00:00+08:00"),
    {  # no care date at all: always part of the record
        "resourceType": "Condition",
        "id": "c1",
        "subject": {"reference": "Patient/p1"},
        "code": {"text": "高血压"},
    },
]
SECOND = [obs("o2", "p1", "2026-06-10T09:00:00+08:00")]  # written at T2


@pytest.fixture(scope="module")
def client(module_database_url: str) -> Iterator[TestClient]:
    app = create_app(Settings(database_url=module_database_url))
    with TestClient(app) as client:
        for resources, now in ((FIRST, T1), (SECOND, T2)):
            with app.state.session_factory.begin() as session:
                save_resources(session, resources, message_id=None, now=now)
        ingest = client.post(
            "/ingest",
            content=DISCHARGE.read_bytes(),
            headers={"X-Source-System": "county-emr", "Content-Type": "application/xml"},
        )
        assert ingest.status_code == 202 and ingest.json()["status"] == "processed", ingest.text
        yield client
    app.state.engine.dispose()


def entries(body: dict, mode: str = "match") -> list[str]:
    return [
        f"{e['resource']['resourceType']}/{e['resource']['id']}"
        for e in body.get("entry", [])
        if e["search"]["mode"] == mode
    ]


class TestEverything:
    def test_the_whole_record_with_what_it_refers_to(self, client: TestClient, fhir_valid) -> None:
        response = client.get("/fhir/Patient/p1/$everything")
        assert response.status_code == 200, response.text
        body = response.json()
        fhir_valid(body)
        assert body["type"] == "searchset" and body["total"] == 5
        assert entries(body) == [
            "Patient/p1",
            "Condition/c1",
            "Encounter/e1",
            "Observation/o1",
            "Observation/o2",
        ]
        # shared resources referred to, as include entries; nothing of the other patient
        assert sorted(entries(body, "include")) == ["Organization/org1", "Practitioner/dr1"]
        assert "Observation/o3" not in entries(body)

    def test_care_dates_start_and_end(self, client: TestClient) -> None:
        body = client.get("/fhir/Patient/p1/$everything?start=2026-06-01&end=2026-06-30").json()
        # o2 is in June; the Patient and the undated Condition always belong
        assert entries(body) == ["Patient/p1", "Condition/c1", "Observation/o2"]
        body = client.get("/fhir/Patient/p1/$everything?end=2026-05-03").json()
        assert entries(body) == ["Patient/p1", "Condition/c1", "Encounter/e1", "Observation/o1"]

    def test_since_and_type(self, client: TestClient) -> None:
        body = client.get("/fhir/Patient/p1/$everything?_since=2026-06-15T00:00:00Z").json()
        assert entries(body) == ["Observation/o2"]
        body = client.get("/fhir/Patient/p1/$everything?_type=Observation,Practitioner").json()
        assert entries(body) == ["Observation/o1", "Observation/o2"]
        assert entries(body, "include") == ["Practitioner/dr1"]  # Organization not asked for

    def test_paging(self, client: TestClient) -> None:
        seen: list[str] = []
        url = "/fhir/Patient/p1/$everything?_count=2"
        while url:
            body = client.get(url).json()
            seen += entries(body)
            links = {link["relation"]: link["url"] for link in body["link"]}
            url = links.get("next", "").removeprefix("http://testserver")
        everything = ["Patient/p1", "Condition/c1", "Encounter/e1", "Observation/o1"]
        assert seen == [*everything, "Observation/o2"]

    def test_across_the_records_of_one_person(
        self, client: TestClient, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Once the patient index links p1 and p2 as one person, both records come back
        (the seam is replaced here the way the index will replace it)."""
        import adapter.api.operations as operations

        monkeypatch.setattr(operations, "person_of", lambda session, pid: "person-1")
        monkeypatch.setattr(operations, "records_of", lambda session, person: ["p1", "p2"])
        body = client.get("/fhir/Patient/p1/$everything?_type=Patient,Observation").json()
        assert entries(body) == [
            "Patient/p1",
            "Patient/p2",
            "Observation/o1",
            "Observation/o2",
            "Observation/o3",
        ]

    @pytest.mark.parametrize(
        ("query", "status"),
        [("?start=soon", 400), ("?_type=Unicorn", 400), ("?_count=x", 400), ("?foo=1", 400)],
    )
    def test_bad_requests(self, client: TestClient, query: str, status: int) -> None:
        assert client.get(f"/fhir/Patient/p1/$everything{query}").status_code == status

    def test_unknown_patient(self, client: TestClient) -> None:
        assert client.get("/fhir/Patient/nobody/$everything").status_code == 404


class TestDocument:
    def test_the_stored_document_bundle_as_stored(self, client: TestClient, fhir_valid) -> None:
        bundles = client.get("/fhir/Bundle?type=document").json()["entry"]
        stored = bundles[0]["resource"]
        composition_id = stored["entry"][0]["resource"]["id"]
        response = client.get(f"/fhir/Composition/{composition_id}/$document")
        assert response.status_code == 200, response.text
        assert response.json() == stored  # byte for byte the stored resource
        fhir_valid(response.json())

    def test_assembled_when_no_bundle_was_stored(
        self, client: TestClient, save, fhir_valid
    ) -> None:
        composition = {
            "resourceType": "Composition",
            "id": "comp-loose",
            "identifier": {"system": "urn:example", "value": "d-1"},
            "status": "final",
            "type": {"text": "出院小结"},
            "subject": {"reference": "Patient/p1"},
            "date": "2026-05-05",
            "author": [{"reference": "Practitioner/dr1"}],
            "title": "出院小结",
            "section": [{"title": "检验", "entry": [{"reference": "Observation/o1"}]}],
        }
        with client.app.state.session_factory.begin() as session:
            save_resources(session, [composition], message_id=None, now=T2)
        body = client.get("/fhir/Composition/comp-loose/$document").json()
        fhir_valid(body)
        assert body["type"] == "document" and body["identifier"]["value"] == "d-1"
        keys = [f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in body["entry"]]
        assert keys[0] == "Composition/comp-loose"
        assert set(keys[1:]) == {"Patient/p1", "Practitioner/dr1", "Observation/o1"}

    def test_unknown_composition_and_persist(self, client: TestClient) -> None:
        assert client.get("/fhir/Composition/nope/$document").status_code == 404
        bundles = client.get("/fhir/Bundle?type=document").json()["entry"]
        cid = bundles[0]["resource"]["entry"][0]["resource"]["id"]
        assert client.get(f"/fhir/Composition/{cid}/$document?persist=true").status_code == 404


class TestValidate:
    def post(self, client: TestClient, path: str, body: dict | bytes, media: str = "json"):
        content = body if isinstance(body, bytes) else __import__("json").dumps(body).encode()
        return client.post(
            path, content=content, headers={"Content-Type": f"application/fhir+{media}"}
        )

    def test_a_valid_resource(self, client: TestClient, fhir_valid) -> None:
        response = self.post(client, "/fhir/Patient/$validate", FIRST[0])
        assert response.status_code == 200
        outcome = response.json()
        fhir_valid(outcome)
        assert [i["severity"] for i in outcome["issue"]] == ["information"]

    def test_problems_are_located(self, client: TestClient) -> None:
        bad = {
            "resourceType": "Observation",
            "id": "x",
            "status": "final",
            "code": {"text": "Hb"},
            "effectiveDateTime": "2026-02-30",  # no such day
            "valueQuantity": {"value": "high"},  # not a number
        }
        outcome = self.post(client, "/fhir/Observation/$validate", bad).json()
        errors = [i for i in outcome["issue"] if i["severity"] == "error"]
        where = " ".join(str(i.get("expression")) for i in errors)
        assert "effectiveDateTime" in where and "valueQuantity" in where

    def test_parameters_form_and_profile(self, client: TestClient) -> None:
        params = {
            "resourceType": "Parameters",
            "parameter": [
                {"name": "resource", "resource": FIRST[0]},
                {"name": "profile", "valueUri": "http://hl7.org/fhir/StructureDefinition/Patient"},
            ],
        }
        assert self.post(client, "/fhir/Patient/$validate", params).status_code == 200
        params["parameter"][1]["valueUri"] = "http://example.cn/StructureDefinition/other"
        assert self.post(client, "/fhir/Patient/$validate", params).status_code == 404

    @pytest.mark.parametrize(
        ("path", "body", "media", "status"),
        [
            ("/fhir/Patient/$validate", b"{not json", "json", 400),
            ("/fhir/Observation/$validate", FIRST[0], "json", 400),  # a Patient
            ("/fhir/Patient/$validate", b"<Patient/>", "xml", 415),
            ("/fhir/Unicorn/$validate", FIRST[0], "json", 404),
        ],
    )
    def test_refusals(self, client: TestClient, path: str, body, media: str, status: int) -> None:
        assert self.post(client, path, body, media).status_code == status

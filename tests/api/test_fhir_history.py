"""History of one resource, of a type and of the server: _since, _at, _count and paging."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from adapter.api.app import create_app
from adapter.settings import Settings
from adapter.store import save_resources

DAY = [datetime(2030, 5, d, 0, 0, tzinfo=UTC) for d in range(1, 5)]
P1 = {"resourceType": "Patient", "id": "p1", "gender": "female"}
O1 = {"resourceType": "Observation", "id": "o1", "status": "final", "code": {"text": "Hb"}}
P2 = {"resourceType": "Patient", "id": "p2", "gender": "male"}
# newest first: p2 v1 (May 4), p1 v2 (May 3), o1 v1 (May 2), p1 v1 (May 1)
WRITES = [(P1, DAY[0]), (O1, DAY[1]), ({**P1, "gender": "unknown"}, DAY[2]), (P2, DAY[3])]


@pytest.fixture(scope="module")
def client(module_database_url: str) -> Iterator[TestClient]:
    app = create_app(Settings(database_url=module_database_url))
    with TestClient(app) as client:
        for body, now in WRITES:
            with app.state.session_factory.begin() as session:
                save_resources(session, [body], message_id=None, now=now)
        yield client
    app.state.engine.dispose()


def versions(body: dict) -> list[str]:
    """type/id/version of each entry; the adapter's own CodeSystems (published at start-up,
    current at any later moment) left out."""
    return [
        f"{e['resource']['resourceType']}/{e['resource']['id']}/{e['resource']['meta']['versionId']}"
        for e in body.get("entry", [])
        if e["resource"]["resourceType"] not in ("CodeSystem", "OperationDefinition")
    ]


def history(client: TestClient, path: str, fhir_valid, **params: str) -> dict:
    response = client.get(path, params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    fhir_valid(body)
    assert body["type"] == "history"
    return body


def test_system_history_is_every_version_newest_first(client: TestClient, fhir_valid) -> None:
    # the adapter's own CodeSystems are published at start-up: keep to the writes above
    body = history(client, "/fhir/_history", fhir_valid, _since="2030-05-01T00:00:00Z")
    assert versions(body) == ["Patient/p2/1", "Patient/p1/2", "Observation/o1/1", "Patient/p1/1"]
    assert body["total"] == 4
    assert body["entry"][3]["request"] == {"method": "PUT", "url": "Patient/p1"}
    assert body["entry"][3]["response"]["status"] == "201 Created"


def test_type_history_keeps_to_the_type(client: TestClient, fhir_valid) -> None:
    body = history(client, "/fhir/Patient/_history", fhir_valid)
    assert versions(body) == ["Patient/p2/1", "Patient/p1/2", "Patient/p1/1"]
    assert history(client, "/fhir/Specimen/_history", fhir_valid)["total"] == 0


def test_since_keeps_versions_written_at_or_after(client: TestClient, fhir_valid) -> None:
    body = history(client, "/fhir/_history", fhir_valid, _since="2030-05-02T00:00:00Z")
    assert versions(body) == ["Patient/p2/1", "Patient/p1/2", "Observation/o1/1"]
    # a zone-less dateTime is read in the consortium's zone (+08:00): 05-02 08:00 UTC
    body = history(client, "/fhir/Patient/_history", fhir_valid, _since="2030-05-02T08:00:00")
    assert versions(body) == ["Patient/p2/1", "Patient/p1/2"]


def test_instance_history_honours_since(client: TestClient, fhir_valid) -> None:
    body = history(client, "/fhir/Patient/p1/_history", fhir_valid, _since="2030-05-02T00:00:00Z")
    assert versions(body) == ["Patient/p1/2"] and body["total"] == 1
    # a known resource with nothing in the window: an empty history, not 404
    body = history(client, "/fhir/Patient/p1/_history", fhir_valid, _since="2031-01-01T00:00:00Z")
    assert body["total"] == 0 and "entry" not in body


def test_at_keeps_the_versions_current_then(client: TestClient, fhir_valid) -> None:
    # noon on May 2: p1 was at version 1 (version 2 came May 3), o1 existed, p2 did not
    body = history(client, "/fhir/_history", fhir_valid, _at="2030-05-02T12:00:00Z")
    assert versions(body) == ["Observation/o1/1", "Patient/p1/1"]
    # the whole of May 3 (UTC): p1 v1 until midnight... v1 ends exactly at May 3 00:00,
    # so only v2 overlaps, with o1
    body = history(client, "/fhir/_history", fhir_valid, _at="2030-05-03T00:00:00Z")
    assert versions(body) == ["Patient/p1/2", "Observation/o1/1"]
    body = history(client, "/fhir/Patient/p1/_history", fhir_valid, _at="2030-05")
    assert versions(body) == ["Patient/p1/2", "Patient/p1/1"]


def test_paging_walks_every_version_once(client: TestClient, fhir_valid) -> None:
    seen: list[str] = []
    body = history(client, "/fhir/_history", fhir_valid, _count="3", _since="2030-05-01")
    while True:
        seen.extend(versions(body))
        links = {link["relation"]: link["url"] for link in body["link"]}
        assert "_since=2030-05-01" in links["self"]  # the filter is kept in every link
        if "next" not in links:
            break
        body = client.get(links["next"].removeprefix("http://testserver")).json()
    assert len(seen) == len(set(seen)) == 4


@pytest.mark.parametrize(
    ("query", "location"),
    [
        ("_since=yesterday", "_since"),
        ("_at=2026-13", "_at"),
        ("_count=-1", "_count"),
        ("_offset=x", "_offset"),
        ("name=wang", "name"),
    ],
)
def test_bad_parameters_are_located_400s(
    client: TestClient, fhir_valid, query: str, location: str
) -> None:
    for path in ("/fhir/_history", "/fhir/Patient/_history", "/fhir/Patient/p1/_history"):
        response = client.get(f"{path}?{query}")
        assert response.status_code == 400, (path, response.text)
        outcome = response.json()
        fhir_valid(outcome)
        assert outcome["issue"][0]["location"] == [location]


def test_unknown_parameters_are_ignored_when_lenient(client: TestClient, fhir_valid) -> None:
    response = client.get(
        "/fhir/Patient/_history?name=wang", headers={"Prefer": "handling=lenient"}
    )
    assert response.status_code == 200
    assert all("name=" not in link["url"] for link in response.json()["link"])


def test_unknown_resource_and_type(client: TestClient) -> None:
    assert client.get("/fhir/Patient/nobody/_history").status_code == 404
    assert client.get("/fhir/Unicorn/_history").json()["issue"][0]["code"] == "not-supported"

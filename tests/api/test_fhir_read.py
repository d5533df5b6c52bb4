"""read, vread, history, and the rendering of every error as an OperationOutcome."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from adapter.api.app import create_app
from adapter.errors import InputTooLargeError
from adapter.settings import Settings
from adapter.store import save_resources

T1 = datetime(2026, 5, 3, 2, 0, 0, 250000, tzinfo=UTC)
T2 = datetime(2026, 5, 4, 9, 30, tzinfo=UTC)
PATIENT = {
    "resourceType": "Patient",
    "id": "p1",
    "gender": "female",
    "name": [{"family": "李", "given": ["秀英"]}],
}


@pytest.fixture(scope="module")
def client(module_database_url: str) -> Iterator[TestClient]:
    """One app for the module over a database holding two versions of Patient/p1."""
    app = create_app(Settings(database_url=module_database_url))
    with TestClient(app) as client:
        for body, now in ((PATIENT, T1), ({**PATIENT, "gender": "unknown"}, T2)):
            with app.state.session_factory.begin() as session:
                save_resources(session, [body], message_id=None, now=now)
        yield client
    app.state.engine.dispose()


def outcome(response, status: int, fhir_valid) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    body = response.json()
    fhir_valid(body)
    assert body["resourceType"] == "OperationOutcome"
    return body


class TestRead:
    def test_read_current_version_with_etag_and_last_modified(
        self, client: TestClient, fhir_valid
    ) -> None:
        response = client.get("/fhir/Patient/p1")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/fhir+json")
        assert response.headers["etag"] == 'W/"2"'
        assert response.headers["last-modified"] == "Mon, 04 May 2026 09:30:00 GMT"
        body = response.json()
        fhir_valid(body)
        assert body["gender"] == "unknown"
        assert body["meta"] == {"versionId": "2", "lastUpdated": "2026-05-04T09:30:00.000+00:00"}
        assert body["name"][0]["family"] == "李"  # UTF-8 round trip

    def test_vread_returns_the_old_version(self, client: TestClient, fhir_valid) -> None:
        response = client.get("/fhir/Patient/p1/_history/1")
        assert response.status_code == 200
        assert response.headers["etag"] == 'W/"1"'
        assert response.headers["last-modified"] == "Sun, 03 May 2026 02:00:00 GMT"
        body = response.json()
        fhir_valid(body)
        assert body["gender"] == "female" and body["meta"]["versionId"] == "1"
        assert body["meta"]["lastUpdated"] == "2026-05-03T02:00:00.250+00:00"

    def test_history_bundle_newest_first(self, client: TestClient, fhir_valid) -> None:
        response = client.get("/fhir/Patient/p1/_history")
        assert response.status_code == 200
        body = response.json()
        fhir_valid(body)
        assert body["type"] == "history" and body["total"] == 2
        assert [e["resource"]["meta"]["versionId"] for e in body["entry"]] == ["2", "1"]
        assert [e["response"]["etag"] for e in body["entry"]] == ['W/"2"', 'W/"1"']
        assert body["entry"][1]["response"]["status"] == "201 Created"
        assert body["entry"][0]["fullUrl"] == "http://testserver/fhir/Patient/p1"

    def test_history_paging(self, client: TestClient) -> None:
        body = client.get("/fhir/Patient/p1/_history?_count=1").json()
        assert len(body["entry"]) == 1 and body["total"] == 2
        nxt = next(link["url"] for link in body["link"] if link["relation"] == "next")
        second = client.get(nxt.removeprefix("http://testserver")).json()
        assert second["entry"][0]["resource"]["meta"]["versionId"] == "1"

    @pytest.mark.parametrize(
        "path",
        [
            "/fhir/Patient/p1/_history/3",
            "/fhir/Patient/p1/_history/abc",
            "/fhir/Patient/nobody",
            "/fhir/Patient/nobody/_history",
            "/fhir/Observation/p1",
        ],
    )
    def test_unknown_ids_and_versions_are_404(
        self, client: TestClient, fhir_valid, path: str
    ) -> None:
        body = outcome(client.get(path), 404, fhir_valid)
        assert body["issue"][0]["code"] == "not-found"

    def test_unknown_type_is_404_not_supported(self, client: TestClient, fhir_valid) -> None:
        body = outcome(client.get("/fhir/Unicorn/1"), 404, fhir_valid)
        assert body["issue"][0]["code"] == "not-supported"
        assert "Unicorn" in body["issue"][0]["diagnostics"]

    def test_malformed_id_is_400(self, client: TestClient, fhir_valid) -> None:
        body = outcome(client.get("/fhir/Patient/" + "x" * 65), 400, fhir_valid)
        assert "not a valid FHIR id" in body["issue"][0]["diagnostics"]


def test_unknown_route_and_wrong_method_are_operation_outcomes(
    client: TestClient, fhir_valid
) -> None:
    body = outcome(client.get("/no/such/thing"), 404, fhir_valid)
    assert body["issue"][0]["code"] == "not-found"
    body = outcome(client.delete("/fhir/Patient/p1"), 405, fhir_valid)
    assert body["issue"][0]["code"] == "not-supported"


@pytest.fixture
def app_with_failing_routes(app: FastAPI) -> FastAPI:
    @app.get("/test/boom")
    def boom() -> None:
        raise RuntimeError("patient 李秀英 110101198005030028 broke it")

    @app.get("/test/too-large")
    def too_large() -> None:
        raise InputTooLargeError("message of 9 MB is over the 5 MB limit", location="body")

    @app.get("/test/typed")
    def typed(limit: int) -> dict:
        return {"limit": limit}

    return app


def test_adapter_errors_keep_their_status(app_with_failing_routes: FastAPI, fhir_valid) -> None:
    with TestClient(app_with_failing_routes) as client:
        body = outcome(client.get("/test/too-large"), 413, fhir_valid)
    assert body["issue"][0]["code"] == "too-long"
    assert body["issue"][0]["location"] == ["body"]


def test_request_validation_errors_are_400(app_with_failing_routes: FastAPI, fhir_valid) -> None:
    with TestClient(app_with_failing_routes) as client:
        body = outcome(client.get("/test/typed?limit=many"), 400, fhir_valid)
    assert body["issue"][0]["location"] == ["query.limit"]


def test_unexpected_errors_are_500_without_patient_data(
    app_with_failing_routes: FastAPI, fhir_valid, caplog
) -> None:
    with TestClient(app_with_failing_routes, raise_server_exceptions=False) as client:
        response = client.get("/test/boom?name=李秀英")
    body = outcome(response, 500, fhir_valid)
    text = response.text
    assert "李秀英" not in text and "110101198005030028" not in text
    assert body["issue"][0]["severity"] == "fatal"
    assert "ref " in body["issue"][0]["diagnostics"]
    logged = [r for r in caplog.records if r.name == "adapter.api"]
    assert logged and "李秀英" not in logged[0].getMessage()

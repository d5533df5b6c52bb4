"""Issue 8, findings 7 and 8 over HTTP on the test database: inputs over the shape limits are
kept as quarantined with a located ``too-costly`` issue; odd values (a 20-digit result,
JSON nested deep, NUL bytes and huge numbers in query parameters, an over-long
Content-Type) get a located 4xx or quarantine reason, never a 500 or "internal error"."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from adapter.api.app import create_app
from adapter.settings import Settings
from adapter.store.models import InboundMessage

ROOT = Path(__file__).resolve().parents[2]
TWO_ORDERS = (ROOT / "fixtures/hl7v2/oru/std-hl7v2/two-orders.hl7").read_bytes()
UP_SLIP = ROOT / "fixtures/json/referral/liuhe-his-json/up-slip.json"


@pytest.fixture
def small_app(database_url: str) -> Iterator[FastAPI]:
    app = create_app(Settings(database_url=database_url, max_segments=40, max_repetitions=50))
    yield app
    app.state.engine.dispose()


@pytest.fixture
def small_client(small_app: FastAPI) -> Iterator[TestClient]:
    with TestClient(small_app) as client:
        yield client


def _post(client: TestClient, body: bytes, source: str = "std-hl7v2", ctype: str = "x/y"):
    return client.post(
        "/ingest", content=body, headers={"X-Source-System": source, "Content-Type": ctype}
    )


def _stored(app: FastAPI, message_id: str) -> tuple[str, bytes]:
    with app.state.session_factory() as session:
        found = session.get(InboundMessage, message_id)
        assert found is not None
        return found.status, found.raw


def _issues(response) -> list[dict]:
    return [i for i in response.json()["issue"] if i["severity"] in ("error", "fatal")]


# -- finding 7: limits ---------------------------------------------------------------------------


def test_too_many_segments_is_quarantined_at_the_segment(
    small_app: FastAPI, small_client: TestClient
) -> None:
    body = TWO_ORDERS + b"NTE|1||note\r" * 40
    response = _post(small_client, body)
    assert response.status_code == 422, response.text
    (issue,) = _issues(response)
    assert issue["code"] == "too-costly"
    assert issue["location"] == ["segment 41"]
    assert "ADAPTER_MAX_SEGMENTS" in issue["diagnostics"]
    assert _stored(small_app, response.headers["X-Message-Id"]) == ("quarantined", body)


def test_too_many_repetitions_is_quarantined_at_the_field(small_client: TestClient) -> None:
    body = TWO_ORDERS.replace(b"||6.3|", b"||" + b"~".join([b"6.3"] * 51) + b"|")
    response = _post(small_client, body)
    assert response.status_code == 422, response.text
    (issue,) = _issues(response)
    assert (issue["code"], issue["location"]) == ("too-costly", ["OBX[1]-5"])


def test_json_nested_deep_is_quarantined_at_its_path(client: TestClient) -> None:
    document = json.loads(UP_SLIP.read_bytes())
    inner: dict = {}
    document["extra"] = inner
    for _ in range(400):
        inner["a"] = {}
        inner = inner["a"]
    response = _post(client, json.dumps(document).encode(), "liuhe-his-json", "application/json")
    assert response.status_code == 422, response.text
    (issue,) = _issues(response)
    assert issue["code"] == "too-costly"
    assert issue["location"][0].startswith("$.extra.a.a.a")
    assert "internal error" not in issue["diagnostics"]


# -- finding 8: located errors instead of 500 and "internal error" -------------------------------


@pytest.mark.parametrize("digits", ["99999999999999999999", "12345678901234567890.123456789"])
def test_a_result_with_too_many_digits_is_quarantined_at_obx_5(
    app: FastAPI, client: TestClient, digits: str
) -> None:
    body = TWO_ORDERS.replace(b"||6.3|", b"||" + digits.encode() + b"|")
    response = _post(client, body)
    assert response.status_code == 422, response.text
    (issue,) = _issues(response)
    assert issue["location"] == ["OBX[1]-5"]
    assert issue["code"] == "value" and "internal error" not in issue["diagnostics"]
    assert _stored(app, response.headers["X-Message-Id"]) == ("quarantined", body)


def test_a_reference_range_with_too_many_digits_is_located(client: TestClient) -> None:
    body = TWO_ORDERS.replace(b"|3.5-9.5|", b"|3.5-99999999999999999999|")
    response = _post(client, body)
    assert response.status_code == 422, response.text
    assert [i["location"] for i in _issues(response)] == [["OBX[1]-7"]]


@pytest.mark.parametrize(
    ("query", "where"),
    [
        ("/fhir/Patient?name=a%00b", "name"),
        ("/fhir/Patient?_id=%00", "_id"),
        ("/fhir/Patient?identifier=x%7C%00", "identifier"),
        ("/fhir/Patient?na%00me=a", "na%00me"),
        ("/messages?status=%00", "status"),
        ("/messages/%00", "path"),
        ("/fhir/Observation?value-quantity=1e309", "value-quantity"),
        ("/fhir/Observation?value-quantity=0e999", "value-quantity"),
        ("/fhir/Observation?value-quantity=1e" + "9" * 5000, "value-quantity"),
        ("/fhir/Patient?_offset=100000000000000000000", "_offset"),
        ("/fhir/Patient?_count=%C2%B2", "_count"),
        ("/fhir/Patient/x/_history?_offset=100000000000000000000", "_offset"),
        ("/messages?offset=100000000000000000000", "query.offset"),
        ("/deliveries?offset=100000000000000000000", "query.offset"),
    ],
)
def test_odd_query_values_answer_a_located_400(client: TestClient, query: str, where: str) -> None:
    response = client.get(query)
    assert response.status_code == 400, response.text
    issue = response.json()["issue"][0]
    assert issue["location"] == [where]


def test_a_content_type_over_255_characters_answers_a_located_400(client: TestClient) -> None:
    response = _post(client, TWO_ORDERS, ctype="application/hl7-v2; x=" + "a" * 300)
    assert response.status_code == 400, response.text
    assert response.json()["issue"][0]["location"] == ["Content-Type"]
    # and a Content-Type of 255 characters is taken as before
    response = _post(client, TWO_ORDERS, ctype="application/hl7-v2; x=" + "a" * 233)
    assert response.status_code == 202, response.text

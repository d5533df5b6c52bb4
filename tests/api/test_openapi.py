"""The OpenAPI description tells what the API does (adapter/api/openapi.py)."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from adapter.fhir.search_params import RESOURCES, SUPPORTED_TYPES

FHIR_MEDIA = {"application/fhir+json", "application/fhir+xml"}


def test_openapi_tells_the_truth(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    paths = document["paths"]
    # one search per served type, with that type's parameters
    assert "/fhir/{resource_type}" not in paths
    for rtype in SUPPORTED_TYPES:
        names = {p["name"] for p in paths[f"/fhir/{rtype}"]["get"]["parameters"]}
        assert set(RESOURCES[rtype].params) <= names, rtype
        assert {"_count", "_format"} <= names
    birthdate = next(
        p for p in paths["/fhir/Patient"]["get"]["parameters"] if p["name"] == "birthdate"
    )
    assert birthdate["in"] == "query" and birthdate["description"].startswith("date")
    # FHIR answers in both formats; errors are OperationOutcomes, with the codes returned
    for path in (
        "/fhir/{resource_type}/{resource_id}",
        "/fhir/{resource_type}/{resource_id}/_history/{version_id}",
    ):
        names = {p["name"] for p in paths[path]["get"]["parameters"]}
        assert {"_summary", "_elements", "_format"} <= names, path
    read = paths["/fhir/{resource_type}/{resource_id}"]["get"]["responses"]
    assert set(read["200"]["content"]) == FHIR_MEDIA
    assert {"304", "400", "404", "405", "406", "410"} <= set(read)
    outcome = read["404"]["content"]["application/fhir+xml"]["schema"]
    assert outcome == {"$ref": "#/components/schemas/OperationOutcome"}
    validate = paths["/fhir/{resource_type}/$validate"]["post"]["responses"]
    assert {"413", "415"} <= set(validate)
    assert {"400", "409", "413", "422"} <= set(paths["/ingest"]["post"]["responses"])
    # read from the request by the route, declared by hand (decision 0129)
    ingest_headers = {
        p["name"]: p for p in paths["/ingest"]["post"]["parameters"] if p["in"] == "header"
    }
    assert set(ingest_headers) == {"x-source-system", "prefer"}
    assert "respond-async" in ingest_headers["prefer"]["description"]
    # the referral Task writes (docs/referral-loop.md) refuse a party (403), a transition
    # (409), a stale If-Match (412) and an element that may not change (422)
    task = paths["/fhir/Task/{task_id}"]
    for method in ("put", "patch"):
        assert {"403", "409", "412", "422"} <= set(task[method]["responses"]), method
        headers = {p["name"] for p in task[method]["parameters"] if p["in"] == "header"}
        assert headers == {"X-Facility", "If-Match", "Prefer"}
    assert "application/json-patch+json" in task["patch"]["requestBody"]["content"]
    for path, operations in paths.items():
        for method, operation in operations.items():
            if path == "/fhir/Task/{task_id}" and method in ("put", "patch"):
                continue
            if path.startswith("/fhir"):
                # FastAPI's own 422 "Validation Error": the FHIR API answers 400 instead
                assert "422" not in operation["responses"], path
            # no conditional writes exist yet: never answered
            assert "412" not in operation["responses"], path
    # a bearer token everywhere but the public routes, with its 401 and 403
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    for path, method in (("/fhir/{resource_type}/{resource_id}", "get"), ("/ingest", "post")):
        operation = paths[path][method]
        assert operation["security"] == [{"bearer": []}]
        assert {"401", "403"} <= set(operation["responses"]), path
    for path in ("/health", "/fhir/metadata"):
        assert "security" not in paths[path]["get"]
        assert not {"401", "403"} & set(paths[path]["get"]["responses"]), path
    assert "/fhir/Patient/{patient_id}/$everything" in paths
    assert "/fhir/_history" in paths
    metrics = paths["/metrics"]["get"]["responses"]["200"]["content"]
    assert list(metrics) == ["text/plain; version=0.0.4"]


def test_metrics_is_text(client: TestClient) -> None:
    response = client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")


def test_the_referral_routes_declare_their_query_parameters(client: TestClient) -> None:
    """The ledger, analysis and worklist read their filters by hand (400, not 422): the
    document still lists each one, and the follow-up its answers."""
    paths = client.get("/openapi.json").json()["paths"]

    def names(path: str, method: str = "get") -> dict[str, Any]:
        return {p["name"]: p for p in paths[path][method].get("parameters", [])}

    ledger = names("/referrals/ledger")
    assert {
        "facility", "department", "direction", "status", "from", "to", "week", "q",
        "emergency", "green-channel", "backfilled", "incomplete", "format", "_count", "_offset",
    } <= set(ledger)  # fmt: skip
    assert all(p["in"] == "query" and not p["required"] for p in ledger.values())
    assert ledger["format"]["schema"]["enum"] == ["json", "csv", "xlsx", "html"]
    assert ledger["direction"]["schema"]["enum"] == ["up", "down", "same"]
    assert {"facility", "from", "to", "week", "q", "department"} <= set(
        names("/referrals/incomplete")
    )
    analysis = names("/referrals/analysis")
    assert {"facility", "year", "quarter", "from", "to", "format"} <= set(analysis)
    assert analysis["format"]["schema"]["enum"] == ["json", "csv", "xlsx"]
    assert {"facility", "department", "all"} <= set(names("/referrals/worklist"))
    for path in ("/referrals/ledger", "/referrals/analysis", "/referrals/worklist"):
        operation = paths[path]["get"]
        assert {"400", "401", "403"} <= set(operation["responses"]), path
        assert operation["security"] == [{"bearer": []}], path
    follow_up = paths["/referrals/{task_id}/follow-up"]["post"]
    assert {"400", "403", "404", "409"} <= set(follow_up["responses"])
    assert "application/json" in follow_up["requestBody"]["content"]


def test_the_declared_ledger_parameters_are_the_ones_read(client: TestClient) -> None:
    """Each declared filter is really read: a bad value of it is refused naming it."""
    for name, bad in (
        ("direction", "sideways"),
        ("emergency", "maybe"),
        ("green-channel", "maybe"),
        ("backfilled", "maybe"),
        ("incomplete", "maybe"),
        ("format", "pdf"),
        ("week", "2026-11-26"),
        ("from", "yesterday"),
        ("to", "tomorrow"),
        ("facility", "nowhere"),
        ("_count", "0"),
    ):
        answer = client.get("/referrals/ledger", params={name: bad})
        assert answer.status_code == 400, (name, answer.text)
        assert answer.json()["issue"][0].get("location") == [name] or name in answer.text

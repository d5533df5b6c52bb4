"""The OpenAPI description tells what the API does (adapter/api/openapi.py)."""

from __future__ import annotations

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

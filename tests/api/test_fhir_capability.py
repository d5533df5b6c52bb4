"""The CapabilityStatement states exactly what the search-parameter table and the API do."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from adapter import __version__
from adapter.api.app import create_app
from adapter.fhir.search_params import RESOURCES, SUPPORTED_TYPES
from adapter.settings import Settings

SAMPLE = {  # one acceptable value per parameter type
    "token": "http://example.org|x",
    "string": "abc",
    "date": "ge2026-01-01",
    "reference": "abc",
    "quantity": "gt1",
    "uri": "http://example.org/cs",
}


@pytest.fixture(scope="module")
def client(module_database_url: str) -> Iterator[TestClient]:
    app = create_app(Settings(database_url=module_database_url))
    with TestClient(app) as client:
        yield client
    app.state.engine.dispose()


@pytest.fixture
def capability(client: TestClient, fhir_valid) -> dict:
    response = client.get("/fhir/metadata")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/fhir+json")
    body = response.json()
    fhir_valid(body)
    return body


def test_statement_header(capability: dict) -> None:
    assert capability["resourceType"] == "CapabilityStatement"
    assert (capability["fhirVersion"], capability["kind"], capability["status"]) == (
        "4.0.1",
        "instance",
        "active",
    )
    assert capability["format"] == ["json", "xml"]
    assert capability["software"]["version"] == __version__
    assert capability["implementation"]["url"] == "http://testserver/fhir"


def test_resources_interactions_and_parameters_match_the_table(capability: dict) -> None:
    (rest,) = capability["rest"]
    assert rest["mode"] == "server"
    assert {"code": "history-system"} in rest["interaction"]
    listed = {r["type"]: r for r in rest["resource"]}
    assert sorted(listed) == sorted(SUPPORTED_TYPES)
    for rtype, resource in listed.items():
        assert [i["code"] for i in resource["interaction"]] == [
            "read",
            "vread",
            "search-type",
            "history-instance",
            "history-type",
            # a referral Task changes by the state machine (docs/referral-loop.md)
            *(["update", "patch"] if rtype == "Task" else []),
        ]
        assert resource["updateCreate"] is (rtype == "Task")
        operations = {o["name"] for o in resource["operation"]}
        # the example consortium has a recognition catalogue: its operations are served
        patient = {"everything", "recognisable", "recognition-decision", "recognition-viewed"}
        expected = {"validate"} | {"Patient": patient, "Composition": {"document"}}.get(
            rtype, set()
        )
        assert operations == expected, rtype
        params = {p["name"]: p["type"] for p in resource["searchParam"]}
        assert params == {name: p.type for name, p in RESOURCES[rtype].params.items()}
        assert {"_id", "_lastUpdated"} <= params.keys()


def test_every_listed_parameter_is_accepted_by_search(capability: dict, client: TestClient) -> None:
    for resource in capability["rest"][0]["resource"]:
        for param in resource["searchParam"]:
            value = "2026" if param["name"] == "_lastUpdated" else SAMPLE[param["type"]]
            response = client.get(f"/fhir/{resource['type']}", params={param["name"]: value})
            assert response.status_code == 200, (resource["type"], param["name"], response.text)


def test_the_covered_types(capability: dict) -> None:
    assert set(SUPPORTED_TYPES) == {
        "Patient",
        "Practitioner",
        "PractitionerRole",
        "Organization",
        "Encounter",
        "ServiceRequest",
        "Task",
        "Condition",
        "DiagnosticReport",
        "Observation",
        "Specimen",
        "Composition",
        "DocumentReference",
        "MedicationRequest",
        "MedicationStatement",
        "AllergyIntolerance",
        "Procedure",
        "Provenance",
        "Consent",
        "CodeSystem",
        "OperationDefinition",
        "Bundle",
    }
    observation = RESOURCES["Observation"].params
    assert observation["date"].paths == ("effectiveDateTime", "effectivePeriod", "effectiveInstant")
    assert observation["patient"].targets == ("Patient",)


def test_every_search_parameter_names_its_definition(capability: dict) -> None:
    rest = capability["rest"][0]
    params = list(rest["searchParam"]) + [
        p for resource in rest["resource"] for p in resource["searchParam"]
    ]
    r4 = "http://hl7.org/fhir/SearchParameter/"
    own = "https://yigongti-fhir-adapter.github.io/fhir/SearchParameter/"
    assert all(p["definition"].startswith((r4, own)) for p in params)
    by_type = {
        r["type"]: {p["name"]: p["definition"] for p in r["searchParam"]} for r in rest["resource"]
    }
    assert by_type["Observation"]["patient"] == r4 + "clinical-patient"
    assert by_type["Observation"]["value-string"] == r4 + "Observation-value-string"
    assert by_type["Observation"]["_source"] == own + "Observation-source"
    assert by_type["DocumentReference"]["doc-status"] == own + "DocumentReference-doc-status"


def test_includes_and_lenient_handling_are_stated(capability: dict) -> None:
    rest = capability["rest"][0]
    observation = next(r for r in rest["resource"] if r["type"] == "Observation")
    assert "Observation:patient" in observation["searchInclude"]
    patient = next(r for r in rest["resource"] if r["type"] == "Patient")
    assert "Observation:patient" in patient["searchRevInclude"]
    assert "handling=lenient" in rest["documentation"]
    assert {"code": "search-system"} in rest["interaction"]

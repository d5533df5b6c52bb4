"""Which resources match: chains, _has, modifiers (:identifier, :text, :not, :of-type,
:in / :not-in, :missing), system-level search with _type, _tag / _profile / _security /
_source, and what R4 expressions select (a code with only text, a display-only subject)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from adapter.api.app import create_app
from adapter.settings import Settings
from tests.api.search_fixtures import DIRECTION, MESSAGE_ID, MRN, PROFILE, TAG, V2_0203, seed


@pytest.fixture(scope="module")
def client(module_database_url: str) -> Iterator[TestClient]:
    app = create_app(Settings(database_url=module_database_url))
    with TestClient(app) as client:
        seed(app.state.session_factory)
        yield client
    app.state.engine.dispose()


def found(client: TestClient, url: str, **params: str) -> list[str]:
    response = client.get(url, params=params or None)
    assert response.status_code == 200, response.text
    return sorted(
        f"{e['resource']['resourceType']}/{e['resource']['id']}"
        for e in response.json().get("entry", [])
        if e["search"]["mode"] == "match"
    )


def refused(client: TestClient, url: str, **params: str) -> str:
    response = client.get(url, params=params or None)
    assert response.status_code == 400, response.text
    return " ".join(i["diagnostics"] for i in response.json()["issue"])


PA_OBS = ["Observation/oa1", "Observation/oa2", "Observation/oa3"]


class TestChains:
    @pytest.mark.parametrize(
        "name",
        ["patient.identifier", "subject:Patient.identifier", "subject.identifier"],
    )
    def test_by_the_patients_identifier(self, client: TestClient, name: str) -> None:
        assert found(client, "/fhir/Observation", **{name: f"{MRN}|A-1"}) == PA_OBS
        assert found(client, "/fhir/Observation", **{name: "B-2"}) == ["Observation/ob2"]

    def test_chain_with_a_modifier_and_other_types(self, client: TestClient) -> None:
        assert found(client, "/fhir/Observation", **{"patient.name": "张"}) == PA_OBS
        assert found(client, "/fhir/Observation", **{"patient.family:exact": "张三"}) == []
        assert found(client, "/fhir/Patient", **{"organization.name": "青山"}) == ["Patient/pa"]
        assert found(client, "/fhir/Observation", **{"encounter.status": "finished"}) == [
            "Observation/oa1"
        ]

    def test_two_levels_are_refused(self, client: TestClient) -> None:
        assert "one level" in refused(
            client, "/fhir/Observation", **{"patient.organization.name": "x"}
        )


class TestHas:
    def test_patients_with_an_observation_of_a_code(self, client: TestClient) -> None:
        assert found(client, "/fhir/Patient", **{"_has:Observation:patient:code": "2345-7"}) == [
            "Patient/pa"
        ]
        assert found(client, "/fhir/Patient", **{"_has:Observation:patient:code": "718-7"}) == [
            "Patient/pa",
            "Patient/pb",
        ]
        assert found(
            client, "/fhir/Observation", **{"_has:DiagnosticReport:result:status": "final"}
        ) == [
            "Observation/oa1",
            "Observation/oa2",
        ]

    def test_bad_has(self, client: TestClient) -> None:
        refused(client, "/fhir/Patient", **{"_has:Observation:code:status": "final"})
        refused(client, "/fhir/Patient", **{"_has:Observation:patient:_has:x:y:z": "1"})


class TestModifiers:
    def test_reference_identifier(self, client: TestClient) -> None:
        assert found(
            client,
            "/fhir/Observation",
            **{"performer:identifier": "urn:oid:1.2.156.1.qs.staff|D-9"},
        ) == ["Observation/ob2"]
        assert found(client, "/fhir/Observation", **{"performer:identifier": "D-8"}) == []

    def test_token_text(self, client: TestClient) -> None:
        assert found(client, "/fhir/Observation", **{"code:text": "血常规"}) == ["Observation/oa2"]
        assert found(client, "/fhir/Observation", **{"code:text": "hemo"}) == [
            "Observation/oa1",
            "Observation/ob1",
            "Observation/ob2",
        ]
        assert found(client, "/fhir/Patient", **{"identifier:text": "病案"}) == ["Patient/pa"]

    def test_token_not_includes_resources_without_the_code(self, client: TestClient) -> None:
        assert found(client, "/fhir/Observation", **{"code:not": "718-7"}) == [
            "Observation/oa2",
            "Observation/oa3",
        ]

    def test_identifier_of_type(self, client: TestClient) -> None:
        assert found(client, "/fhir/Patient", **{"identifier:of-type": f"{V2_0203}|MR|A-1"}) == [
            "Patient/pa"
        ]
        assert found(client, "/fhir/Patient", **{"identifier:of-type": f"{V2_0203}|MR|B-2"}) == []
        assert "of-type" in refused(client, "/fhir/Patient", **{"identifier:of-type": "MR|A-1"})

    def test_in_and_not_in_the_adapters_value_sets(self, client: TestClient) -> None:
        assert found(client, "/fhir/ServiceRequest", **{"category:in": DIRECTION}) == [
            "ServiceRequest/sr1"
        ]
        assert found(client, "/fhir/ServiceRequest", **{"category:not-in": DIRECTION}) == [
            "ServiceRequest/sr2"
        ]
        text = refused(client, "/fhir/ServiceRequest", **{"category:in": "http://x.org/vs"})
        assert DIRECTION in text  # names the value sets it knows

    def test_missing_sees_display_only_references_and_text_only_codes(
        self, client: TestClient
    ) -> None:
        # R4 Observation.subject selects a Reference with only a display
        assert found(client, "/fhir/Observation", **{"subject:missing": "true"}) == []
        assert "Observation/ob1" in found(
            client, "/fhir/Observation", **{"subject:missing": "false"}
        )
        # ... but patient is subject.where(resolve() is Patient): a display resolves to nothing
        assert found(client, "/fhir/Observation", **{"patient:missing": "true"}) == [
            "Observation/ob1"
        ]
        assert found(client, "/fhir/DiagnosticReport", **{"code:missing": "false"}) == [
            "DiagnosticReport/rep1"
        ]

    def test_value_string_matches_the_text_of_a_coded_value(self, client: TestClient) -> None:
        assert found(client, "/fhir/Observation", **{"value-string": "阴"}) == ["Observation/oa2"]


class TestSystemLevelAndMeta:
    def test_type_and_common_parameters(self, client: TestClient, fhir_valid) -> None:
        response = client.get("/fhir", params={"_type": "Patient,Observation", "_id": "pa,oa1"})
        assert response.status_code == 200
        fhir_valid(response.json())
        assert found(client, "/fhir", _type="Patient,Observation", _id="pa,oa1,rep1") == [
            "Observation/oa1",
            "Patient/pa",
        ]
        assert found(client, "/fhir", _id="rep1") == ["DiagnosticReport/rep1"]
        assert len(found(client, "/fhir", _type="Observation", _count="100")) == 5

    def test_system_search_links_and_errors(self, client: TestClient) -> None:
        body = client.get("/fhir?_type=Observation&_count=2").json()
        assert body["total"] == 5
        assert next(link["url"] for link in body["link"] if link["relation"] == "next").startswith(
            "http://testserver/fhir?_type=Observation"
        )
        assert "Nope" in refused(client, "/fhir", _type="Nope")
        refused(client, "/fhir", code="718-7")  # not a parameter of every type
        refused(client, "/fhir", _sort="date")

    def test_tag_profile_security(self, client: TestClient) -> None:
        assert found(client, "/fhir/Patient", _tag=f"{TAG}|vip") == ["Patient/pa"]
        assert found(client, "/fhir", _tag="vip") == ["Patient/pa"]
        assert found(client, "/fhir/Patient", _profile=PROFILE) == ["Patient/pa"]
        assert found(client, "/fhir/Patient", _security="R") == ["Patient/pa"]
        assert found(client, "/fhir/Patient", **{"_tag:not": "vip"}) == ["Patient/pb"]

    @pytest.mark.parametrize("value", [MESSAGE_ID, f"urn:uuid:{MESSAGE_ID}"])
    def test_source_is_the_message(self, client: TestClient, value: str) -> None:
        assert found(client, "/fhir/Observation", _source=value) == ["Observation/oa1"]
        assert found(client, "/fhir", _source=value) == ["Observation/oa1", "Patient/pa"]

"""``_summary`` and ``_elements`` on read and vread (FHIR R4 search.html#summary, #elements),
in JSON and in XML: the same cut as search makes, marked SUBSETTED."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from lxml import etree

from adapter.api.app import create_app
from adapter.settings import Settings
from adapter.store import save_resources
from tests.fhir_xml_rules import xml_problems

T1 = datetime(2026, 5, 3, 2, 0, tzinfo=UTC)
T2 = datetime(2026, 5, 4, 9, 30, tzinfo=UTC)
FHIR = "{http://hl7.org/fhir}"
PATIENT = {
    "resourceType": "Patient",
    "id": "p1",
    "text": {
        "status": "generated",
        "div": '<div xmlns="http://www.w3.org/1999/xhtml"><p>李秀英</p></div>',
    },
    "identifier": [{"system": "urn:oid:2.16.156.10011.1.3", "value": "110101199003070011"}],
    "name": [{"family": "李", "given": ["秀英"]}],
    "gender": "female",
    "birthDate": "1990-03-07",
    "_birthDate": {"extension": [{"url": "http://example.cn/x", "valueString": "农历"}]},
    "maritalStatus": {"text": "已婚"},
}
OBSERVATION = {
    "resourceType": "Observation",
    "id": "o1",
    "status": "final",
    "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}], "text": "血红蛋白"},
    "subject": {"reference": "Patient/p1"},
    "effectiveDateTime": "2026-05-03T10:00:00+08:00",
    "valueQuantity": {"value": 132.5, "unit": "g/L", "system": "http://unitsofmeasure.org"},
    "interpretation": [{"text": "正常"}],
}
XML = {"Accept": "application/fhir+xml"}


@pytest.fixture(scope="module")
def client(module_database_url: str) -> Iterator[TestClient]:
    """Patient/p1 in two versions (the second married, 已婚 -> 离异), Observation/o1."""
    app = create_app(Settings(database_url=module_database_url))
    with TestClient(app) as client:
        second = {**PATIENT, "maritalStatus": {"text": "离异"}}
        for bodies, now in (([PATIENT, OBSERVATION], T1), ([second], T2)):
            with app.state.session_factory.begin() as session:
                save_resources(session, bodies, message_id=None, now=now)
        yield client
    app.state.engine.dispose()


def get(client: TestClient, url: str, status: int = 200, headers: dict | None = None):
    response = client.get(url, headers=headers or {})
    assert response.status_code == status, response.text
    return response


def tags(resource: dict) -> list[str]:
    return [t["code"] for t in resource["meta"].get("tag", [])]


def xml_of(response) -> etree._Element:
    assert response.headers["content-type"].startswith("application/fhir+xml")
    problems = xml_problems(response.content)
    assert not problems, problems
    return etree.fromstring(response.content)


def children(root: etree._Element) -> list[str]:
    return [etree.QName(child).localname for child in root]


class TestJson:
    def test_summary_true_keeps_the_summary_elements(self, client: TestClient, fhir_valid) -> None:
        body = get(client, "/fhir/Patient/p1?_summary=true").json()
        fhir_valid(body)
        # text and maritalStatus are not summary elements of Patient; the rest are
        assert set(body) == {
            "resourceType",
            "id",
            "meta",
            "identifier",
            "name",
            "gender",
            "birthDate",
            "_birthDate",
        }
        assert tags(body) == ["SUBSETTED"]
        assert body["meta"]["versionId"] == "2"

    def test_summary_text_keeps_the_narrative_and_the_mandatory(
        self, client: TestClient, fhir_valid
    ) -> None:
        body = get(client, "/fhir/Observation/o1?_summary=text").json()
        fhir_valid(body)
        # Observation/o1 has no narrative: the mandatory elements are what is left
        assert set(body) == {"resourceType", "id", "meta", "status", "code"}
        assert tags(body) == ["SUBSETTED"]
        patient = get(client, "/fhir/Patient/p1?_summary=text").json()
        assert set(patient) == {"resourceType", "id", "meta", "text"}

    def test_summary_data_drops_only_the_narrative(self, client: TestClient) -> None:
        body = get(client, "/fhir/Patient/p1?_summary=data").json()
        assert "text" not in body and body["maritalStatus"] == {"text": "离异"}
        assert tags(body) == ["SUBSETTED"]
        # nothing to drop: the resource as stored, not marked
        whole = get(client, "/fhir/Observation/o1?_summary=data").json()
        assert whole["interpretation"] == [{"text": "正常"}] and tags(whole) == []

    def test_summary_false_is_the_whole_resource(self, client: TestClient) -> None:
        body = get(client, "/fhir/Patient/p1?_summary=false").json()
        assert body == get(client, "/fhir/Patient/p1").json()
        assert tags(body) == []

    def test_elements_keep_what_was_asked_and_the_mandatory(
        self, client: TestClient, fhir_valid
    ) -> None:
        body = get(client, "/fhir/Observation/o1?_elements=subject,value").json()
        fhir_valid(body)
        assert set(body) == {
            "resourceType",
            "id",
            "meta",
            "status",
            "code",
            "subject",
            "valueQuantity",
        }
        assert tags(body) == ["SUBSETTED"]

    def test_vread_is_cut_the_same_way(self, client: TestClient) -> None:
        response = get(client, "/fhir/Patient/p1/_history/1?_elements=maritalStatus")
        assert response.headers["etag"] == 'W/"1"'
        body = response.json()
        assert body["maritalStatus"] == {"text": "已婚"} and "name" not in body
        assert body["meta"]["versionId"] == "1" and tags(body) == ["SUBSETTED"]
        summary = get(client, "/fhir/Patient/p1/_history/1?_summary=true").json()
        assert "maritalStatus" not in summary and summary["name"][0]["family"] == "李"

    def test_the_stored_resource_is_not_changed(self, client: TestClient) -> None:
        get(client, "/fhir/Patient/p1?_summary=true")
        body = get(client, "/fhir/Patient/p1").json()
        assert body["text"]["status"] == "generated" and tags(body) == []

    @pytest.mark.parametrize(
        ("query", "location"),
        [
            ("_summary=count", "_summary"),
            ("_summary=some", "_summary"),
            ("_elements=1x", "_elements"),
            ("_summary=true&_elements=a.b.", "_elements"),
        ],
    )
    def test_bad_values_are_400_naming_the_parameter(
        self, client: TestClient, query: str, location: str
    ) -> None:
        for path in ("/fhir/Patient/p1", "/fhir/Patient/p1/_history/2"):
            body = get(client, f"{path}?{query}", status=400).json()
            assert body["resourceType"] == "OperationOutcome"
            assert body["issue"][0]["location"] == [location]


class TestXml:
    def test_read_summary_as_xml(self, client: TestClient) -> None:
        root = xml_of(get(client, "/fhir/Patient/p1?_summary=true", headers=XML))
        assert root.tag == f"{FHIR}Patient"
        assert children(root) == ["id", "meta", "identifier", "name", "gender", "birthDate"]
        tag = root.find(f"{FHIR}meta/{FHIR}tag/{FHIR}code")
        assert tag is not None and tag.get("value") == "SUBSETTED"
        birth = root.find(f"{FHIR}birthDate")
        assert birth.find(f"{FHIR}extension").get("url") == "http://example.cn/x"

    def test_vread_elements_as_xml(self, client: TestClient) -> None:
        response = get(client, "/fhir/Observation/o1/_history/1?_elements=value&_format=xml")
        root = xml_of(response)
        assert children(root) == ["id", "meta", "status", "code", "valueQuantity"]
        assert root.find(f"{FHIR}meta/{FHIR}tag/{FHIR}code").get("value") == "SUBSETTED"

    def test_bad_value_is_an_xml_operation_outcome(self, client: TestClient) -> None:
        root = xml_of(get(client, "/fhir/Patient/p1?_summary=count&_format=xml", status=400))
        assert root.tag == f"{FHIR}OperationOutcome"

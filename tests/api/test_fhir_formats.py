"""The wire form of FHIR answers: JSON or XML (_format, Accept), 406, _pretty, HEAD,
conditional reads (ETag / If-None-Match, If-Modified-Since) and CORS."""

from __future__ import annotations

import json
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
}
OBSERVATION = {
    "resourceType": "Observation",
    "id": "o1",
    "status": "final",
    "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}], "text": "血红蛋白"},
    "subject": {"reference": "Patient/p1"},
    "effectiveDateTime": "2026-05-03T10:00:00+08:00",
    "valueQuantity": {"value": 132.5, "unit": "g/L", "system": "http://unitsofmeasure.org"},
    "referenceRange": [{"low": {"value": 115}, "high": {"value": 150}, "text": "115-150"}],
}
XML_ACCEPT = {"Accept": "application/fhir+xml"}
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


@pytest.fixture(scope="module")
def client(module_database_url: str) -> Iterator[TestClient]:
    app = create_app(Settings(database_url=module_database_url))
    with TestClient(app) as client:
        with app.state.session_factory.begin() as session:
            save_resources(session, [PATIENT, OBSERVATION], message_id=None, now=T1)
        yield client
    app.state.engine.dispose()


def xml_of(response) -> etree._Element:
    assert response.headers["content-type"].startswith("application/fhir+xml")
    problems = xml_problems(response.content)
    assert not problems, problems
    return etree.fromstring(response.content)


class TestXml:
    @pytest.mark.parametrize(
        ("query", "headers"),
        [("?_format=xml", {}), ("?_format=application/fhir+xml", {}), ("", XML_ACCEPT)],
    )
    def test_read_as_xml(self, client: TestClient, query: str, headers: dict) -> None:
        response = client.get(f"/fhir/Patient/p1{query}", headers=headers)
        assert response.status_code == 200
        root = xml_of(response)
        assert root.tag == f"{FHIR}Patient"
        assert root.find(f"{FHIR}name/{FHIR}family").get("value") == "李"
        birth = root.find(f"{FHIR}birthDate")
        assert birth.get("value") == "1990-03-07"
        assert birth.find(f"{FHIR}extension").get("url") == "http://example.cn/x"
        assert response.headers["etag"] == 'W/"1"'  # the headers of the read are kept

    def test_order_of_elements_follows_the_definition(self, client: TestClient) -> None:
        root = xml_of(client.get("/fhir/Observation/o1", headers=XML_ACCEPT))
        names = [etree.QName(child).localname for child in root]
        # Observation: id, meta, status, code, subject, effective[x], value[x], referenceRange
        assert names == [
            "id",
            "meta",
            "status",
            "code",
            "subject",
            "effectiveDateTime",
            "valueQuantity",
            "referenceRange",
        ]
        assert root.find(f"{FHIR}valueQuantity/{FHIR}value").get("value") == "132.5"

    def test_search_and_history_bundles_as_xml(self, client: TestClient) -> None:
        for path in ("/fhir/Observation?subject=Patient/p1", "/fhir/Patient/p1/_history"):
            response = client.get(path, headers=XML_ACCEPT)
            assert response.status_code == 200, response.text
            root = xml_of(response)
            assert root.tag == f"{FHIR}Bundle"
            resource = root.find(f"{FHIR}entry/{FHIR}resource")[0]
            assert resource.tag in (f"{FHIR}Observation", f"{FHIR}Patient")

    def test_format_and_pretty_on_search_history_and_operations(self, client: TestClient) -> None:
        for path in (
            "/fhir/Observation?subject=Patient/p1",
            "/fhir/Observation/_history",
            "/fhir/Patient/p1/$everything",
        ):
            response = client.get(f"{path}{'&' if '?' in path else '?'}_format=xml&_pretty=true")
            assert response.status_code == 200, (path, response.text)
            assert xml_of(response).tag == f"{FHIR}Bundle"
            pretty = client.get(f"{path}{'&' if '?' in path else '?'}_pretty=true")
            assert pretty.status_code == 200 and pretty.text.startswith("{\n")

    def test_errors_are_xml_operation_outcomes_too(self, client: TestClient) -> None:
        response = client.get("/fhir/Patient/nobody?_format=xml")
        assert response.status_code == 404
        root = xml_of(response)
        assert root.tag == f"{FHIR}OperationOutcome"
        assert root.find(f"{FHIR}issue/{FHIR}code").get("value") == "not-found"

    def test_pretty_xml_is_the_same_document(self, client: TestClient) -> None:
        flat = client.get("/fhir/Patient/p1?_format=xml").content
        pretty = client.get("/fhir/Patient/p1?_format=xml&_pretty=true").content
        assert pretty.count(b"\n") > flat.count(b"\n") + 5
        parser = etree.XMLParser(remove_blank_text=True)
        assert etree.tostring(etree.fromstring(pretty, parser)) == etree.tostring(
            etree.fromstring(flat, parser)
        )


class TestNegotiation:
    @pytest.mark.parametrize(
        "accept", [None, "application/fhir+json", "application/json", "*/*", "text/html, */*"]
    )
    def test_json_stays_the_default(self, client: TestClient, accept: str | None) -> None:
        headers = {"Accept": accept} if accept else {}
        response = client.get("/fhir/Patient/p1", headers=headers)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/fhir+json")
        assert response.json()["id"] == "p1"
        assert "Accept" in response.headers["vary"]

    @pytest.mark.parametrize(
        "accept",
        # a browser's Accept ranks application/xml (0.9) above */* (0.8)
        ["application/fhir+json;q=0.5, application/fhir+xml", "text/xml", BROWSER_ACCEPT],
    )
    def test_xml_chosen_by_quality(self, client: TestClient, accept: str) -> None:
        response = client.get("/fhir/Patient/p1", headers={"Accept": accept})
        assert response.headers["content-type"].startswith("application/fhir+xml")

    @pytest.mark.parametrize(
        ("query", "accept"),
        [("?_format=turtle", None), ("", "text/html"), ("", "application/pdf, image/*")],
    )
    def test_nothing_served_is_406_never_json_200(
        self, client: TestClient, fhir_valid, query: str, accept: str | None
    ) -> None:
        headers = {"Accept": accept} if accept else {}
        for path in ("/fhir/Patient/p1", "/fhir/Patient", "/fhir/_history", "/fhir/metadata"):
            response = client.get(path + query, headers=headers)
            assert response.status_code == 406, (path, response.text)
            outcome = response.json()
            fhir_valid(outcome)
            text = outcome["issue"][0]["diagnostics"]
            assert "application/fhir+json" in text and "application/fhir+xml" in text

    def test_pretty_json(self, client: TestClient) -> None:
        response = client.get("/fhir/Patient/p1?_pretty=true")
        assert response.text.startswith('{\n  "resourceType"')
        assert json.loads(response.text) == client.get("/fhir/Patient/p1").json()
        assert int(response.headers["content-length"]) == len(response.content)


class TestHeadAndConditionalReads:
    def test_head_is_get_without_the_body(self, client: TestClient) -> None:
        get = client.get("/fhir/Patient/p1")
        head = client.head("/fhir/Patient/p1")
        assert head.status_code == 200 and head.content == b""
        for name in ("etag", "last-modified", "content-type", "content-length"):
            assert head.headers[name] == get.headers[name]
        assert client.head("/fhir/Patient/nobody").status_code == 404

    @pytest.mark.parametrize(
        ("headers", "status"),
        [
            ({"If-None-Match": 'W/"1"'}, 304),
            ({"If-None-Match": '"1"'}, 304),
            ({"If-None-Match": 'W/"0", W/"1"'}, 304),
            ({"If-None-Match": "*"}, 304),
            ({"If-None-Match": 'W/"2"'}, 200),
            ({"If-Modified-Since": "Sun, 03 May 2026 02:00:00 GMT"}, 304),
            ({"If-Modified-Since": "Mon, 04 May 2026 00:00:00 GMT"}, 304),
            ({"If-Modified-Since": "Sat, 02 May 2026 00:00:00 GMT"}, 200),
            ({"If-Modified-Since": "not a date"}, 200),
            # If-None-Match wins when both are sent
            ({"If-None-Match": 'W/"2"', "If-Modified-Since": "Mon, 04 May 2026 00:00:00 GMT"}, 200),
        ],
    )
    def test_conditional_read(self, client: TestClient, headers: dict, status: int) -> None:
        response = client.get("/fhir/Patient/p1", headers=headers)
        assert response.status_code == status
        assert response.headers["etag"] == 'W/"1"'
        if status == 304:
            assert response.content == b""
        else:
            assert response.json()["id"] == "p1"

    def test_conditional_vread(self, client: TestClient) -> None:
        response = client.get("/fhir/Patient/p1/_history/1", headers={"If-None-Match": 'W/"1"'})
        assert response.status_code == 304


class TestCors:
    def test_off_by_default(self, client: TestClient) -> None:
        response = client.get("/fhir/Patient/p1", headers={"Origin": "https://app.example.cn"})
        assert "access-control-allow-origin" not in response.headers
        preflight = client.options(
            "/fhir/Patient/p1",
            headers={"Origin": "https://app.example.cn", "Access-Control-Request-Method": "GET"},
        )
        assert "access-control-allow-origin" not in preflight.headers

    def test_configured_origins(self, database_url: str) -> None:
        settings = Settings(database_url=database_url, cors_origins=["https://app.example.cn"])
        app = create_app(settings)
        try:
            with TestClient(app) as client:
                origin = {"Origin": "https://app.example.cn"}
                response = client.get("/fhir/metadata", headers=origin)
                assert response.headers["access-control-allow-origin"] == origin["Origin"]
                assert "ETag" in response.headers["access-control-expose-headers"]
                preflight = client.options(
                    "/fhir/Patient", headers={**origin, "Access-Control-Request-Method": "GET"}
                )
                assert preflight.status_code == 200
                other = client.get("/fhir/metadata", headers={"Origin": "https://evil.example"})
                assert "access-control-allow-origin" not in other.headers
        finally:
            app.state.engine.dispose()

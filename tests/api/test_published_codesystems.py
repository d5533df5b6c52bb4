"""The adapter's own CodeSystems are served by the store from start-up."""

from __future__ import annotations

from fastapi.testclient import TestClient

from adapter.fhir.published import published_resources
from tests.fhir_checks import validate_r4

DIRECTION = "https://yigongti-fhir-adapter.github.io/fhir/CodeSystem/referral-direction"
BUSINESS = "https://yigongti-fhir-adapter.github.io/fhir/CodeSystem/referral-business-status"


def test_shipped_codesystems_are_valid_r4() -> None:
    items = published_resources()
    assert [r["id"] for r in items] == [
        "referral-direction",
        "Patient-recognisable",
        "Patient-recognition-decision",
        "Patient-recognition-viewed",
        "referral-business-status",
        "referral-rejection-reason",
        "referral-flag",
        "recognition-unavailable",
    ]
    for item in items:
        assert validate_r4(item) == []


def test_recognition_code_systems_resolve_every_url_the_answers_use(client: TestClient) -> None:
    """With the example catalogue (fixtures/recognition.yaml) the items, marks and reasons
    are served too, so a result's mark tag and a $recognisable answer's systems resolve."""
    from adapter.recognition.parameters import ITEM_SYSTEM, MARK_SYSTEM, REASON_SYSTEM, WHY_SYSTEM

    catalogue = client.app.state.recognition  # type: ignore[attr-defined]
    assert catalogue is not None
    served = {}
    for url in (WHY_SYSTEM, ITEM_SYSTEM, MARK_SYSTEM, REASON_SYSTEM):
        found = client.get("/fhir/CodeSystem", params={"url": url}).json()
        assert [e["resource"]["url"] for e in found.get("entry", [])] == [url], url
        body = found["entry"][0]["resource"]
        assert validate_r4(body) == []
        served[url] = {c["code"]: c["display"] for c in body["concept"]}
    assert served[WHY_SYSTEM]["eqa-expired"] == "出具机构室间质评已过期"
    assert served[ITEM_SYSTEM] == {item.code: item.name for item in catalogue.items}
    assert set(served[MARK_SYSTEM]) == {item.mark for item in catalogue.items}
    assert set(served[REASON_SYSTEM]) == {r.code for r in catalogue.reasons}
    item = client.get("/fhir/CodeSystem/recognition-item").json()
    assert item["version"] == catalogue.edition


def test_referral_direction_is_readable_and_searchable(client: TestClient) -> None:
    read = client.get("/fhir/CodeSystem/referral-direction")
    assert read.status_code == 200
    body = read.json()
    assert body["url"] == DIRECTION
    assert [c["code"] for c in body["concept"]] == ["up", "down"]
    found = client.get("/fhir/CodeSystem", params={"url": DIRECTION}).json()
    assert [e["resource"]["id"] for e in found.get("entry", [])] == ["referral-direction"]


def test_publishing_again_keeps_the_version(client: TestClient) -> None:
    from adapter.fhir.published import publish

    publish(client.app.state.session_factory)  # type: ignore[attr-defined]
    body = client.get("/fhir/CodeSystem/referral-direction").json()
    assert body["meta"]["versionId"] == "1"


def test_referral_business_status_and_reasons_are_served(client: TestClient) -> None:
    """The state machine's codes (adapter/data/referral-states.yaml) are served as CodeSystems."""
    body = client.get("/fhir/CodeSystem/referral-business-status").json()
    assert body["url"] == BUSINESS
    shown = {c["code"]: c["display"] for c in body["concept"]}
    assert shown["accepted"] == "已同意"
    assert shown["discharged"] == "已出院回转"
    assert shown["referred-onward"] == "转他院"
    assert body["count"] == len(body["concept"]) >= 14
    reasons = client.get("/fhir/CodeSystem/referral-rejection-reason").json()
    assert {c["display"] for c in reasons["concept"]} >= {
        "床位已满",
        "超出诊疗范围",
        "资料不全",
        "患者拒绝",
    }


def test_the_recognition_operations_are_defined_where_the_capability_says(
    client: TestClient,
) -> None:
    """Each operation the CapabilityStatement names (with a catalogue configured) resolves
    to an OperationDefinition served here, whose parameters are the ones the API takes."""
    from adapter.api.recognition import RECOGNISABLE_PARAMS, SHOWN_PARAMS, VIEWED_PARAMS
    from adapter.api.recognition_decisions import DECISION_PARAMS

    rest = client.get("/fhir/metadata").json()["rest"][0]
    patient = next(r for r in rest["resource"] if r["type"] == "Patient")
    defined = {o["name"]: o["definition"] for o in patient["operation"]}
    takes = {
        "recognisable": {*RECOGNISABLE_PARAMS, *SHOWN_PARAMS, "patient-identifier"},
        "recognition-decision": set(DECISION_PARAMS),
        "recognition-viewed": set(VIEWED_PARAMS),
    }
    for name, params in takes.items():
        found = client.get("/fhir/OperationDefinition", params={"url": defined[name]}).json()
        [entry] = found["entry"]
        definition = entry["resource"]
        assert definition["code"] == name
        inputs = {p["name"] for p in definition["parameter"] if p["use"] == "in"}
        assert inputs == params, name
    by_code = client.get("/fhir/OperationDefinition", params={"code": "recognition-viewed"})
    assert by_code.json()["total"] == 1

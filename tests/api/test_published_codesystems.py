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
        "referral-business-status",
        "referral-rejection-reason",
        "referral-flag",
    ]
    for item in items:
        assert validate_r4(item) == []


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

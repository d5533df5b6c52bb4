"""The care relationships API: grant, revoke, register, close a referral, list, CareTeam."""

from __future__ import annotations

from fastapi.testclient import TestClient

A, B = "shiqiao-township-centre", "liuhe-township-centre"


def test_grant_revoke_register_and_the_care_team(client: TestClient) -> None:
    granted = client.post(
        "/care/grants",
        json={"person": "p1", "facility": B, "by": "医务科 王主任", "why": "会诊"},
    )
    assert granted.status_code == 201
    assert granted.json()["source"] == "grant" and granted.json()["actor"] == "医务科 王主任"
    assert (
        client.post("/care/registrations", json={"person": "p1", "facility": A}).status_code == 201
    )

    team = client.get("/care/CareTeam", params={"person": "p1"})
    assert team.status_code == 200 and team.headers["content-type"].startswith(
        "application/fhir+json"
    )
    body = team.json()
    assert body["resourceType"] == "CareTeam" and body["subject"] == {"reference": "Patient/p1"}
    members = {
        p["member"]["identifier"]["value"]: p["role"][0]["text"] for p in body["participant"]
    }
    assert members == {"453102982": "registered", "453103053": "grant"}

    revoked = client.post(
        "/care/revocations", json={"person": "p1", "facility": B, "by": "王", "why": "患者要求"}
    )
    assert revoked.status_code == 201
    team = client.get("/care/CareTeam", params={"person": "p1"}).json()
    assert [p["member"]["display"] for p in team["participant"]] == ["青山县石桥镇卫生院"]

    listed = client.get("/care", params={"person": "p1"}).json()
    assert {(i["facility"], i["source"], i["end"] is None) for i in listed["items"]} == {
        (A, "registered", True),
        (B, "grant", False),  # ended by the revocation
        (B, "revocation", True),
    }
    assert client.get("/care", params={"facility": B, "open": "true"}).json()["total"] == 1


def test_bad_requests_are_located(client: TestClient) -> None:
    unknown = client.post(
        "/care/grants", json={"person": "p1", "facility": "nowhere", "by": "x", "why": "y"}
    )
    assert unknown.status_code == 400 and "unknown facility 'nowhere'" in unknown.text
    assert client.get("/care").status_code == 400
    closed = client.post(
        "/care/referrals/close",
        json={"referral": "ServiceRequest/none", "at": "2026-03-01T08:00:00+08:00"},
    )
    assert closed.status_code == 200 and closed.json()["closed"] == 0
    naive = client.post(
        "/care/referrals/close", json={"referral": "ServiceRequest/x", "at": "2026-03-01T08:00"}
    )
    assert naive.status_code == 400

"""The patient index over HTTP with a real app and database: $match (ITI-119), $ihe-pix
(ITI-83 status codes), lookup by any identifier, the review queue with optimistic locking
(409), merge and an unmerge that restores the links exactly and blocks the pair."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select

from adapter.identity.index.person import PERSON_SYSTEM
from adapter.store.identity_tables import IdentityBlock, IdentityRecord
from tests.identity.hl7 import national_id, oru

NID = national_id("430999", "19500115", "082")
NID_OID = "urn:oid:2.16.156.10011.1.3"
HC_OID = "urn:oid:2.16.156.10011.1.19"


def _ingest(client: TestClient, raw: bytes, source: str) -> str:
    response = client.post(
        "/ingest",
        content=raw,
        headers={"X-Source-System": source, "Content-Type": "x-application/hl7-v2+er7"},
    )
    assert response.status_code == 202, response.text
    return next(r for r in response.json()["resources"] if r.startswith("Patient/"))


def _links(client: TestClient) -> list[tuple]:
    factory = client.app.state.session_factory
    with factory() as session:
        rows = session.scalars(select(IdentityRecord).order_by(IdentityRecord.patient_id))
        return [
            (r.patient_id, r.person_id, r.link_kind, r.rule_version, r.rule, r.score, r.evidence)
            for r in rows
        ]


def test_match_pix_and_lookup(client: TestClient) -> None:
    a = _ingest(
        client,
        oru(name="韩秀兰", birth="19500115", sex="F", nid=NID, local="A1", card="JK1"),
        "std-hl7v2",
    )
    b = _ingest(
        client, oru(name="韩秀兰", birth="19500115", sex="F", local="B1", card="JK1"), "shiqiao-lis"
    )
    probe = {
        "resourceType": "Patient",
        "name": [{"text": "韩秀兰"}],
        "birthDate": "1950-01-15",
        "gender": "female",
        "identifier": [{"system": NID_OID, "value": NID}],
    }
    params = {"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": probe}]}
    found = client.post("/fhir/Patient/$match", json=params).json()
    assert found["type"] == "searchset" and found["total"] == 1
    entry = found["entry"][0]
    assert entry["search"]["extension"][0]["valueCode"] == "certain"
    assert 0 < entry["search"]["score"] <= 1
    person = entry["resource"]["id"]
    assert {link["other"]["reference"] for link in entry["resource"]["link"]} == {a, b}

    # the card only a's record carries finds the person and both records
    hit = client.get("/patient-index/lookup", params={"identifier": f"{HC_OID}|JK1"}).json()
    assert hit["persons"] == [f"Patient/{person}"] and sorted(hit["records"]) == sorted([a, b])

    pix = client.get("/fhir/Patient/$ihe-pix", params={"sourceIdentifier": f"{HC_OID}|JK1"})
    assert pix.status_code == 200
    refs = {
        p["valueReference"]["reference"] for p in pix.json()["parameter"] if p["name"] == "targetId"
    }
    assert refs == {a, b, f"Patient/{person}"}
    only_person = client.get(
        "/fhir/Patient/$ihe-pix",
        params={"sourceIdentifier": f"{HC_OID}|JK1", "targetSystem": PERSON_SYSTEM},
    ).json()
    assert [
        p["valueIdentifier"]["value"]
        for p in only_person["parameter"]
        if p["name"] == "targetIdentifier"
    ] == [person]
    # ITI-83: known domain, unknown value 404; unknown source domain 400; unknown target 403
    assert (
        client.get(
            "/fhir/Patient/$ihe-pix", params={"sourceIdentifier": f"{HC_OID}|nope"}
        ).status_code
        == 404
    )
    assert (
        client.get("/fhir/Patient/$ihe-pix", params={"sourceIdentifier": "urn:x:y|1"}).status_code
        == 400
    )
    assert (
        client.get(
            "/fhir/Patient/$ihe-pix",
            params={"sourceIdentifier": f"{HC_OID}|JK1", "targetSystem": "urn:x:unknown"},
        ).status_code
        == 403
    )


def test_review_claim_conflict_merge_and_unmerge(client: TestClient) -> None:
    # no national ID at one facility: demographics only -> review
    a = _ingest(
        client,
        oru(
            name="王芳",
            birth="19800101",
            sex="F",
            nid=national_id("430999", "19800101", "022"),
            local="A2",
        ),
        "std-hl7v2",
    )
    b = _ingest(client, oru(name="王方", birth="19800101", sex="F", local="B2"), "shiqiao-lis")
    queue = client.get("/patient-index/reviews", params={"state": "open"}).json()
    assert queue["total"] == 1
    item = queue["items"][0]
    # same surname, birth date and phone, given names one sound apart: the twin guard
    assert item["reason"] == "twin-guard" and item["left"]["name"].endswith("*")
    detail = client.get(f"/patient-index/reviews/{item['id']}").json()
    assert {detail["left"]["name"], detail["right"]["name"]} == {"王芳", "王方"}
    assert all(NID not in str(v) for v in detail.values())
    before = _links(client)

    claimed = client.post(
        f"/patient-index/reviews/{item['id']}/claim", json={"reviewer": "li", "version": 1}
    )
    assert claimed.status_code == 200 and claimed.json()["state"] == "claimed"
    late = client.post(
        f"/patient-index/reviews/{item['id']}/claim", json={"reviewer": "zhao", "version": 1}
    )
    assert late.status_code == 409
    done = client.post(
        f"/patient-index/reviews/{item['id']}/resolve",
        json={"reviewer": "li", "version": 2, "decision": "match", "note": "same phone"},
    )
    assert done.status_code == 200, done.text
    merged = _links(client)
    assert len({m[1] for m in merged}) == 1 and {m[2] for m in merged} == {"auto", "manual"}

    person_id = merged[0][1]
    info = client.get(f"/patient-index/persons/{person_id}").json()
    merge_id = info["merges"][0]["id"]
    assert [h["action"] for h in info["history"]][-1] == "merge"
    assert info["history"][-1]["actor"] == "li" and info["history"][-1]["ruleVersion"] == 2

    undone = client.post(
        f"/patient-index/merges/{merge_id}/unmerge",
        json={"actor": "chen", "reason": "twins", "block": True},
    )
    assert undone.status_code == 200, undone.text
    assert _links(client) == before  # every link exactly as before the merge
    again = client.post(f"/patient-index/merges/{merge_id}/unmerge", json={"actor": "chen"})
    assert again.status_code == 409
    with client.app.state.session_factory() as session:
        blocked = session.scalars(select(IdentityBlock)).all()
    assert {(x.patient_id, x.other_id) for x in blocked} == {
        tuple(sorted([a.split("/")[1], b.split("/")[1]]))
    }
    # a new message about b re-runs matching: the blocked pair is not reviewed or linked again
    _ingest(client, oru(name="王方", birth="19800101", sex="F", local="B2"), "shiqiao-lis")
    assert _links(client)[0][1] != _links(client)[1][1]
    history = client.get(f"/patient-index/persons/{person_id}").json()["history"]
    assert [h["action"] for h in history if h["action"] in ("merge", "unmerge")] == [
        "merge",
        "unmerge",
    ]

"""Each facility sees only its care (issue 11 section 2), through the API with two
facilities: the county hospital (std-hl7v2) and the Shiqiao township centre (shiqiao-lis)
each send one lab report; each facility then cares for its own patient only.

FHIR reads and searches (every way in: read, vread, search by type and across types,
_include / _revinclude, paging and totals, history at three levels, $everything) show a
reader only its care plus the directory; another facility's patient answers 404 as an
unknown one does. A grant makes the person visible, a revocation hides them again.
Operators see their own facility's messages, raw bytes, deliveries and care.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from adapter.auth.rules import RULES
from adapter.settings import PROJECT_ROOT
from tests.api.auth_helpers import COUNTY, SHIQIAO, Tokens, auth_client

ORU = PROJECT_ROOT / "fixtures" / "hl7v2" / "oru"
SENT = {
    "county": ("county-source", "std-hl7v2", ORU / "std-hl7v2" / "two-orders.hl7"),
    "shiqiao": ("shiqiao-source", "shiqiao-lis", ORU / "shiqiao-lis" / "biochem-lf.hl7"),
}


class World:
    def __init__(self, client: TestClient, tokens: Tokens) -> None:
        self.client, self.tokens = client, tokens
        self.messages: dict[str, str] = {}
        self.resources: dict[str, list[str]] = {}
        for name, (sender, source, path) in SENT.items():
            answer = client.post(
                "/ingest",
                content=path.read_bytes(),
                headers=tokens.headers(
                    sender, **{"X-Source-System": source, "Content-Type": "application/hl7-v2"}
                ),
            )
            assert answer.status_code == 202, answer.text
            self.messages[name] = answer.json()["message_id"]
            self.resources[name] = answer.json()["resources"]

    def patients(self, name: str) -> list[str]:
        return [r for r in self.resources[name] if r.startswith("Patient/")]

    def of_type(self, name: str, rtype: str) -> list[str]:
        return [r for r in self.resources[name] if r.startswith(f"{rtype}/")]

    def get(self, who: str, url: str, **params: Any) -> Any:
        return self.client.get(url, params=params, headers=self.tokens.headers(who))

    def found(self, who: str, url: str, **params: Any) -> tuple[set[str], dict[str, Any]]:
        answer = self.get(who, url, **params)
        assert answer.status_code == 200, answer.text
        bundle = answer.json()
        refs = {
            f"{e['resource']['resourceType']}/{e['resource']['id']}"
            for e in bundle.get("entry") or []
            if e["resource"]["resourceType"] != "OperationOutcome"
        }
        return refs, bundle


@pytest.fixture(scope="module")
def world(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    folder = tmp_path_factory.mktemp("facilities")
    with auth_client(module_database_url, folder, deliveries=True) as (_app, tokens):
        made = World(tokens.client, tokens)
        assert made.patients("county") and made.patients("shiqiao")
        assert not set(made.patients("county")) & set(made.patients("shiqiao"))
        yield made


def _foreign(world: World, mine: str, theirs: str) -> set[str]:
    """What the other facility sent that is about its patient (not directory data)."""
    return {
        r
        for r in world.resources[theirs]
        if r.split("/")[0] not in ("Organization", "Practitioner", "PractitionerRole")
    } - set(world.resources[mine])


@pytest.mark.parametrize(
    ("who", "mine", "theirs"),
    [("county-reader", "county", "shiqiao"), ("shiqiao-reader", "shiqiao", "county")],
)
def test_a_reader_reads_and_searches_only_its_care(
    world: World, who: str, mine: str, theirs: str
) -> None:
    foreign = _foreign(world, mine, theirs)
    assert foreign
    for ref in world.resources[mine]:
        assert world.get(who, f"/fhir/{ref}").status_code == 200, ref
        assert world.get(who, f"/fhir/{ref}/_history/1").status_code == 200, ref
    for ref in foreign:
        for url in (f"/fhir/{ref}", f"/fhir/{ref}/_history/1", f"/fhir/{ref}/_history"):
            answer = world.get(who, url)
            assert answer.status_code == 404, (url, answer.text)
            assert "is not known" in answer.json()["issue"][0]["diagnostics"]
    for rtype in ("Patient", "Observation", "DiagnosticReport", "Specimen"):
        refs, bundle = world.found(who, f"/fhir/{rtype}", _total="accurate")
        assert set(world.of_type(mine, rtype)) <= refs
        assert not refs & foreign
        assert bundle["total"] == len(refs)
    refs, _ = world.found(who, "/fhir", _type="Patient,Observation,DiagnosticReport")
    assert not refs & foreign and set(world.patients(mine)) <= refs
    # the directory is shared: both facilities' Organizations
    orgs, _ = world.found(who, "/fhir/Organization")
    assert set(world.of_type(theirs, "Organization")) <= orgs


def test_includes_paging_history_and_everything_stay_inside(world: World) -> None:
    who, foreign = "county-reader", _foreign(world, "county", "shiqiao")
    refs, _ = world.found(who, "/fhir/Observation", _include="Observation:subject", _count="500")
    assert not refs & foreign and set(world.patients("county")) <= refs
    refs, _ = world.found(
        who,
        "/fhir/Patient",
        _revinclude="Observation:subject",
        **{"_include:iterate": "Observation:specimen"},
    )
    assert not refs & foreign
    assert set(world.of_type("county", "Observation")) <= refs
    # paging: every page, followed by its next link, holds only the care; the total agrees
    seen: set[str] = set()
    url: str | None = "/fhir/Observation?_count=2&_total=accurate"
    total = None
    while url:
        answer = world.client.get(url, headers=world.tokens.headers(who))
        bundle = answer.json()
        total = bundle["total"]
        seen |= {f"Observation/{e['resource']['id']}" for e in bundle.get("entry") or []}
        url = next((ln["url"] for ln in bundle["link"] if ln["relation"] == "next"), None)
    assert seen == set(world.of_type("county", "Observation")) and total == len(seen)
    for url in ("/fhir/_history", "/fhir/Observation/_history", "/fhir/Patient/_history"):
        refs, bundle = world.found(who, url, _count="500")
        assert refs and not refs & foreign, url
        assert bundle["total"] == len(bundle["entry"])
    patient = world.patients("county")[0]
    refs, _ = world.found(who, f"/fhir/{patient}/$everything")
    assert not refs & foreign and patient in refs
    other = world.patients("shiqiao")[0]
    assert world.get(who, f"/fhir/{other}/$everything").status_code == 404


def test_a_grant_shows_a_person_and_a_revocation_hides_them(world: World) -> None:
    patient = world.patients("shiqiao")[0]
    person = patient.split("/")[1]
    admin = world.tokens.headers("consortium-operator")
    assert world.get("county-reader", f"/fhir/{patient}").status_code == 404
    body = {"person": person, "facility": COUNTY, "by": "test", "why": "up-referral"}
    assert world.client.post("/care/grants", json=body, headers=admin).status_code == 201
    assert world.get("county-reader", f"/fhir/{patient}").status_code == 200
    refs, _ = world.found("county-reader", "/fhir/Observation", subject=patient)
    assert set(world.of_type("shiqiao", "Observation")) <= refs
    assert world.client.post("/care/revocations", json=body, headers=admin).status_code == 201
    assert world.get("county-reader", f"/fhir/{patient}").status_code == 404


def test_operators_see_their_own_facility_s_messages_and_deliveries(world: World) -> None:
    county, shiqiao = world.messages["county"], world.messages["shiqiao"]
    listed = world.get("county-operator", "/messages").json()
    assert {m["message_id"] for m in listed["items"]} == {county}
    assert listed["total"] == 1 and listed["items"][0]["facility_id"] == COUNTY
    for url in (
        f"/messages/{shiqiao}",
        f"/messages/{shiqiao}/raw",
        f"/fhir/Binary/{shiqiao}",
    ):
        assert world.get("county-operator", url).status_code == 404, url
        assert world.get("shiqiao-operator", url).status_code == 200, url
    reprocess = world.client.post(
        f"/messages/{shiqiao}/reprocess", headers=world.tokens.headers("county-operator")
    )
    assert reprocess.status_code == 404
    everything = world.get("consortium-operator", "/messages").json()
    assert {m["message_id"] for m in everything["items"]} == {county, shiqiao}
    # deliveries: to the destinations of the operator's facility only
    rows = world.get("consortium-operator", "/deliveries", limit=500).json()["items"]
    county_rows = [r for r in rows if r["destination"] == "county-hospital-fhir"]
    shiqiao_rows = [r for r in rows if r["destination"] == "shiqiao-fhir"]
    assert county_rows and shiqiao_rows, sorted({r["destination"] for r in rows})
    mine = world.get("county-operator", "/deliveries", limit=500).json()
    assert {r["destination"] for r in mine["items"]} == {"county-hospital-fhir"}
    assert mine["total"] == len(county_rows)
    other = shiqiao_rows[0]["id"]
    assert world.get("county-operator", f"/deliveries/{other}").status_code == 404
    assert world.get("shiqiao-operator", f"/deliveries/{other}").status_code == 200
    headers = world.tokens.headers("county-operator")
    assert world.client.post(f"/deliveries/{other}/replay", headers=headers).status_code == 404
    replay = world.client.post(
        "/deliveries/replay", params={"destination": "shiqiao-fhir"}, headers=headers
    )
    assert replay.status_code == 403


def test_operators_see_and_change_their_own_facility_s_care(world: World) -> None:
    headers = world.tokens.headers("county-operator")
    person = world.patients("county")[0].split("/")[1]
    body = {"person": person, "facility": SHIQIAO, "by": "test", "why": "not mine"}
    for path in ("/care/grants", "/care/revocations", "/care/registrations"):
        assert world.client.post(path, json=body, headers=headers).status_code == 403, path
    assert world.get("county-operator", "/care", facility=SHIQIAO).status_code == 403
    rows = world.get("county-operator", "/care", person=person).json()["items"]
    assert rows and {r["facility"] for r in rows} == {COUNTY}
    other = world.patients("shiqiao")[0].split("/")[1]
    assert world.get("county-operator", "/care/CareTeam", person=other).status_code == 404
    assert world.get("county-operator", "/care/CareTeam", person=person).status_code == 200


def test_recognition_corrections_are_the_operator_s_facility_s(world: World) -> None:
    url = "/recognition/corrections"
    own = world.get("county-operator", url)
    assert own.status_code == 200 and own.json()["total"] == 0
    assert world.get("county-operator", url, facility=COUNTY).status_code == 200
    other = world.get("county-operator", url, facility=SHIQIAO)
    assert other.status_code == 403
    assert world.get("consortium-operator", url, facility=SHIQIAO).status_code == 200
    # names patients: not for readers or the administrator
    assert world.get("county-reader", url).status_code == 403
    assert world.get("county-admin", url).status_code == 403


def test_every_facility_limited_route_is_covered_here() -> None:
    covered = {
        "messages", "message", "message_raw", "fhir_binary", "reprocess", "reprocess_by_status",
        "deliveries", "delivery", "replay", "replay_destination",
        "list_care", "care_team", "grant", "revoke", "register", "recognition_corrections",
        "recognition_consent", "recognition_consent_revoke",
        "referral_ledger", "referral_incomplete", "referral_analysis", "referral_worklist",
        "referral_follow_up",
    }  # fmt: skip
    # the console's pages: tests/console/test_console_access.py
    limited = {n for n, rule in RULES.items() if rule.limit == "facility" and not rule.session}
    assert limited == covered, "a route limited by facility needs an own / other test here"


def _identifier(world: World, who: str, patient: str) -> str:
    body = world.get(who, f"/fhir/{patient}").json()
    first = body["identifier"][0]
    return f"{first['system']}|{first['value']}"


def test_no_search_parameter_reaches_another_facility_s_patient(world: World) -> None:
    """Every way a search can name a patient finds nothing of the other facility's."""
    other = world.patients("shiqiao")[0]
    other_id = other.split("/")[1]
    identifier = _identifier(world, "shiqiao-reader", other)
    foreign = _foreign(world, "county", "shiqiao")
    searches = [
        ("/fhir/Patient", {"_id": other_id}),
        ("/fhir/Patient", {"identifier": identifier}),
        ("/fhir/Patient", {"_has:Observation:subject:status": "final"}),
        ("/fhir/Observation", {"subject": other}),
        ("/fhir/Observation", {"patient": other}),
        ("/fhir/Observation", {"subject:Patient.identifier": identifier}),
        ("/fhir/DiagnosticReport", {"subject": other}),
        ("/fhir/DiagnosticReport", {"patient": other, "_include": "DiagnosticReport:result"}),
        ("/fhir/Specimen", {"subject": other}),
        ("/fhir/Organization", {"_revinclude": "Patient:organization"}),
        ("/fhir", {"_type": "Patient,Observation", "_id": other_id}),
    ]
    for url, params in searches:
        refs, bundle = world.found("county-reader", url, _total="accurate", **params)
        assert not refs & foreign, (url, params)
        # the same search by the other facility's reader does find them (the test can fail)
        if url != "/fhir/Organization":
            theirs, _ = world.found("shiqiao-reader", url, **params)
            assert theirs & foreign, (url, params)
        if not refs:
            assert bundle["total"] == 0, (url, params)


def test_disclosures_name_the_authenticated_client(world: World) -> None:
    from sqlalchemy import select

    from adapter.store.audit_log import AuditRecord

    patient = world.patients("county")[0]
    world.get("county-reader", f"/fhir/{patient}", **{"_format": "json"})
    factory = world.client.app.state.session_factory
    with factory() as session:
        rows = session.execute(
            select(AuditRecord.client, AuditRecord.facility, AuditRecord.actor)
            .where(AuditRecord.action == "fhir.read")
            .order_by(AuditRecord.seq.desc())
            .limit(1)
        ).one()
    assert tuple(rows) == ("county-reader", COUNTY, "county-reader")


def test_recognition_asks_and_decides_within_the_care_of_one_s_own_facility(
    world: World,
) -> None:
    own, other = world.patients("county")[0], world.patients("shiqiao")[0]
    assert world.get("county-reader", f"/fhir/{own}/$recognisable").status_code == 200
    answer = world.get("county-reader", f"/fhir/{other}/$recognisable")
    assert answer.status_code == 404, answer.text
    assert world.get("shiqiao-reader", f"/fhir/{other}/$recognisable").status_code == 200

    def decide(patient: str, facility: str) -> Any:
        parameters = {
            "resourceType": "Parameters",
            "parameter": [
                {"name": "order", "valueString": "ORD-1"},
                {"name": "item", "valueString": "CBC"},
                {"name": "facility", "valueString": facility},
                {"name": "doctor", "valueString": "D-1"},
                {"name": "decision", "valueString": "not-recognised"},
            ],
        }
        return world.client.post(
            f"/fhir/{patient}/$recognition-decision",
            json=parameters,
            headers=world.tokens.headers("county-reader"),
        )

    assert decide(own, SHIQIAO).status_code == 403  # for another facility
    assert decide(other, COUNTY).status_code == 404  # about a person not in its care


def test_the_referral_ledger_routes_stay_inside_the_facility(
    database_url: str, tmp_path: Path
) -> None:
    """石桥 -> county and 柳河 -> county: the county's office sees both referrals, 石桥's its
    own; naming another facility is refused on every ledger route (test_auth_referrals.py
    has the ledger's roles)."""
    from datetime import UTC, datetime, timedelta

    from adapter.pipeline import Receipt
    from adapter.referral.scheduler import run_once

    slips = PROJECT_ROOT / "fixtures"
    tasks: list[str] = []
    with auth_client(database_url, tmp_path) as (app, tokens):
        for path, source in (
            ("xml/referral/shiqiao-his/up-slip.xml", "shiqiao-his"),
            ("json/referral/liuhe-his-json/up-slip.json", "liuhe-his-json"),
        ):
            made = app.state.pipeline.ingest(
                (slips / path).read_bytes(), Receipt(source, "cli", received_at=datetime.now(UTC))
            )
            assert made.status.startswith("processed"), made.issues
            tasks += [r for r in made.resources if r.startswith("Task/")]
        late = datetime(2026, 12, 5, tzinfo=UTC) + timedelta(days=2)
        run_once(app.state.session_factory, app.state.consortium, now=late)

        def get(who: str, path: str, **params: str) -> Any:
            return tokens.client.get(path, params=params, headers=tokens.headers(who))

        period = {"from": "2026-11-01", "to": "2026-12-31"}
        for who, seen in (("county-reader", 2), ("shiqiao-reader", 1)):
            assert len(get(who, "/referrals/ledger", **period).json()["rows"]) == seen
            analysis = get(who, "/referrals/analysis", **period).json()
            assert analysis["referrals"] == seen, who
            worklist = get(who, "/referrals/worklist").json()["rows"]
            assert len(worklist) == seen, who  # the receiver must act, the sender is told
            incomplete = get(who, "/referrals/incomplete", **period)
            assert incomplete.status_code == 200
        for path in ("/referrals/ledger", "/referrals/incomplete", "/referrals/worklist"):
            assert get("shiqiao-reader", path, facility=COUNTY).status_code == 403, path
        assert (
            get("shiqiao-reader", "/referrals/analysis", facility=COUNTY, **period).status_code
            == 403
        )

        # the follow-up of 石桥's up-referral is 石桥's: the token's facility decides
        def follow_up(who: str, task: str, **headers: str) -> Any:
            return tokens.client.post(
                f"/referrals/{task.split('/', 1)[1]}/follow-up",
                json={"record": "Encounter/f-1"},
                headers=tokens.headers(who, **headers),
            )

        shiqiao_task, liuhe_task = tasks
        assert follow_up("county-reader", shiqiao_task).status_code == 409  # the receiver
        assert follow_up("shiqiao-reader", liuhe_task).status_code == 403  # not a party
        assert (
            follow_up("shiqiao-reader", shiqiao_task, **{"X-Facility": COUNTY}).status_code == 403
        )
        assert follow_up("county-admin", shiqiao_task).status_code == 403  # not its role
        done = follow_up("shiqiao-operator", shiqiao_task)
        assert done.status_code == 200, done.text
        assert done.json()["follow_ups"] == 1


def test_a_person_s_consent_opens_recognition_and_nothing_else(
    database_url: str, tmp_path: Path, fhir_valid: Any
) -> None:
    """The county hospital has no care relationship with 石桥's patient: $recognisable is
    404 until the person consents (a FHIR Consent recorded by the county), then answered;
    an expired or revoked consent is refused again. The consent opens the recognition
    operations only: reading the patient stays 404. Recording and revoking are the
    allowed facility's own (403 / 404 for another) and audited."""
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import select

    from adapter.store.audit_log import AuditRecord

    with auth_client(database_url, tmp_path) as (app, tokens):
        world = World(tokens.client, tokens)
        other = world.patients("shiqiao")[0]
        patient_id = other.split("/")[1]
        client = tokens.client
        reader = tokens.headers("county-reader")
        now = datetime.now(UTC)

        def ask() -> int:
            return int(client.get(f"/fhir/{other}/$recognisable", headers=reader).status_code)

        def shown() -> int:
            body = {
                "resourceType": "Parameters",
                "parameter": [
                    {"name": "facility", "valueString": COUNTY},
                    {"name": "context", "valueString": "MZ-CONSENT-1"},
                ],
            }
            answer = client.post(f"/fhir/{other}/$recognisable", json=body, headers=reader)
            return int(answer.status_code)

        def consent(**body: Any) -> Any:
            body = {"patient": patient_id, "facility": COUNTY, **body}
            return client.post("/recognition/consent", json=body, headers=reader)

        assert ask() == 404 and shown() == 404  # no care, no consent
        # for another facility: refused
        refused = consent(facility=SHIQIAO, end=(now + timedelta(days=1)).isoformat())
        assert refused.status_code == 403, refused.text
        # an expired consent counts for nothing
        old = consent(
            start=(now - timedelta(days=30)).isoformat(), end=(now - timedelta(days=1)).isoformat()
        )
        assert old.status_code == 201, old.text
        assert ask() == 404
        # a consent in force: answered (GET and POST), and by identifier
        made = consent(end=(now + timedelta(days=7)).isoformat(), by="D0412")
        assert made.status_code == 201, made.text
        stored = made.json()
        fhir_valid(stored)
        assert stored["resourceType"] == "Consent" and stored["status"] == "active"
        assert stored["patient"] == {"reference": other}
        assert stored["provision"]["actor"][0]["reference"]["identifier"]["value"] == COUNTY
        assert ask() == 200 and shown() == 200
        # a doctor's decision and a view are recognition operations too
        decision = {
            "resourceType": "Parameters",
            "parameter": [
                {"name": "order", "valueString": "MZ-CONSENT-1"},
                {"name": "item", "valueString": "QS-JY-001"},
                {"name": "facility", "valueString": COUNTY},
                {"name": "doctor", "valueString": "D0412"},
                {"name": "decision", "valueString": "not-recognised"},
                {"name": "reason", "valueString": "condition-changed"},
            ],
        }
        decided = client.post(f"/fhir/{other}/$recognition-decision", json=decision, headers=reader)
        assert decided.status_code == 201, decided.text
        identifier = _identifier(world, "shiqiao-reader", other)
        by_identifier = client.get(
            "/fhir/$recognisable", params={"patient-identifier": identifier}, headers=reader
        )
        assert by_identifier.status_code == 200, by_identifier.text
        # for recognition only: the patient, their results and searches stay closed
        assert client.get(f"/fhir/{other}", headers=reader).status_code == 404
        searched = client.get("/fhir/Observation", params={"patient": other}, headers=reader)
        assert searched.json().get("total", 0) == 0 and not searched.json().get("entry")
        # 石桥 cannot withdraw the county's consent (404, as unknown)
        url = f"/recognition/consent/{stored['id']}/revoke"
        theirs = client.post(url, json={}, headers=tokens.headers("shiqiao-reader"))
        assert theirs.status_code == 404, theirs.text
        assert ask() == 200
        revoked = client.post(url, json={"by": "D0412"}, headers=reader)
        assert revoked.status_code == 200, revoked.text
        assert revoked.json()["status"] == "inactive"
        assert revoked.json()["meta"]["versionId"] == "2"
        assert ask() == 404 and shown() == 404
        decided = client.post(f"/fhir/{other}/$recognition-decision", json=decision, headers=reader)
        assert decided.status_code == 404, decided.text
        with app.state.session_factory() as session:
            actions = session.execute(
                select(AuditRecord.action, AuditRecord.client, AuditRecord.facility).where(
                    AuditRecord.action.in_(("consent.recorded", "consent.revoked"))
                )
            ).all()
        assert sorted(tuple(a) for a in actions) == [
            ("consent.recorded", "county-reader", COUNTY),
            ("consent.recorded", "county-reader", COUNTY),
            ("consent.revoked", "county-reader", COUNTY),
        ]

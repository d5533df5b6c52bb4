"""GET /fhir/Patient/{id}/$recognisable over real HTTP on the real database, with the
example catalogue (fixtures/recognition.yaml)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from adapter.api.app import create_app
from adapter.settings import Settings
from adapter.store.audit_log import AuditRecord
from tests.api.recognition_fixtures import OTHER_PATIENT, PATIENT, seed

ROOT = Path(__file__).resolve().parents[2]
CBC = ROOT / "fixtures" / "hl7v2" / "oru" / "shiqiao-lis" / "cbc-18-st.hl7"
CBC_PATIENT = (
    "e6e6aecc-c180-5269-8b01-018bc848a1ad"  # 石桥's record (decision 0030: keyed by the facility)
)
URL = f"/fhir/Patient/{PATIENT}/$recognisable"
AT = "2026-11-26T10:00:00+08:00"


@pytest.fixture(scope="module")
def client(module_database_url: str) -> Iterator[TestClient]:
    app = create_app(Settings(database_url=module_database_url))
    with TestClient(app) as client:
        seed(app.state.session_factory)
        sent = client.post(
            "/ingest",
            content=CBC.read_bytes(),
            headers={"X-Source-System": "shiqiao-lis", "Content-Type": "application/hl7-v2"},
        )
        assert sent.status_code == 202, sent.text
        yield client
    app.state.engine.dispose()


def _part(parts: list[dict[str, Any]], name: str) -> Any:
    found = [p for p in parts if p["name"] == name]
    assert len(found) <= 1, name
    if not found:
        return None
    part = found[0]
    return next(v for k, v in part.items() if k.startswith("value"))


def items(body: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    assert body["resourceType"] == "Parameters"
    return {_part(p["part"], "asked"): p["part"] for p in body["parameter"] if p["name"] == "item"}


def results(item: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    return {
        _part(r["part"], "reference")["reference"]: r["part"] for r in item if r["name"] == "result"
    }


def reason(parts: list[dict[str, Any]]) -> str | None:
    coding = _part(parts, "reason")
    return coding["code"] if coding else None


def ask(client: TestClient, url: str = URL, **params: Any) -> dict[str, Any]:
    response = client.get(url, params={"at": AT, **params})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    return response.json()


def test_recent_result_from_a_qualified_lab_is_recognisable_with_its_mark(client):
    body = ask(client, code="QS-JY-001")
    assert _part(body["parameter"], "catalogue") == "2026.2"
    wbc = items(body)["QS-JY-001"]
    assert _part(wbc, "outcome") == "recognisable"
    assert _part(wbc, "mark") == "HR"
    found = results(wbc)
    # newest first; another person's WBC is not there
    assert list(found) == ["Observation/sq-wbc-new", "Observation/sq-wbc-old"]
    new = found["Observation/sq-wbc-new"]
    assert _part(new, "recognisable") is True and reason(new) is None
    assert _part(new, "mark")["code"] == "HR"
    assert _part(new, "issuer")["display"] == "青山县石桥镇卫生院"
    assert _part(new, "date") == "2026-11-24T08:45:00+08:00"
    # outpatient: 7 days after the result's day, until midnight in Asia/Shanghai
    assert _part(new, "expires") == "2026-12-02T00:00:00+08:00"


def test_expired_window(client):
    old = results(items(ask(client, code="QS-JY-001"))["QS-JY-001"])["Observation/sq-wbc-old"]
    assert _part(old, "recognisable") is False
    assert _part(old, "mark") is None  # only recognisable results carry the mark
    assert reason(old) == "expired"
    assert "2026-10-09" in _part(old, "detail")


def test_window_depends_on_the_care_setting(client):
    later = "2026-11-28T08:00:00+08:00"
    wbc = items(ask(client, code="QS-JY-001", setting="inpatient", at=later))["QS-JY-001"]
    new = results(wbc)["Observation/sq-wbc-new"]
    assert reason(new) == "expired"  # inpatient: 3 days, over on 2026-11-28 00:00
    assert _part(new, "expires") == "2026-11-28T00:00:00+08:00"
    assert _part(wbc, "outcome") == "not-recognisable"
    assert reason(wbc) == "expired"
    outpatient = items(ask(client, code="QS-JY-001", at=later))["QS-JY-001"]
    assert _part(outpatient, "outcome") == "recognisable"


def test_window_edge_is_midnight_in_asia_shanghai(client):
    url = f"/fhir/Patient/{CBC_PATIENT}/$recognisable"
    # the ingested 石桥 CBC: taken 2026-11-24 08:45 +08:00, 7 outpatient days
    last = items(ask(client, url, code="QS-JY-001", at="2026-12-01T23:59:59+08:00"))
    assert _part(last["QS-JY-001"], "outcome") == "recognisable"
    after = items(ask(client, url, code="QS-JY-001", at="2026-12-02T00:00:00+08:00"))
    assert _part(after["QS-JY-001"], "outcome") == "not-recognisable"
    # the same instant in UTC (16:00 the day before) is still the last valid day
    utc = items(ask(client, url, code="QS-JY-001", at="2026-12-01T15:59:59Z"))
    assert _part(utc["QS-JY-001"], "outcome") == "recognisable"


def test_eqa_expired_before_the_result_day(client):
    rbc = items(ask(client, code="QS-JY-002"))["QS-JY-002"]
    found = results(rbc)
    november = found["Observation/lh-rbc"]
    assert reason(november) == "eqa-expired"
    assert "2026-09-19" in _part(november, "detail")
    # taken on the EQA's last valid day: it counts (here only the window has run out)
    assert reason(found["Observation/lh-rbc-sep"]) == "expired"
    september = items(ask(client, code="QS-JY-002", at="2026-09-20T10:00:00+08:00"))
    assert _part(september["QS-JY-002"], "outcome") == "recognisable"


def test_eqa_failed(client):
    ua = items(ask(client, code="QS-JY-104", at="2026-10-12T10:00:00+08:00"))["QS-JY-104"]
    only = results(ua)["Observation/lh-ua"]
    assert reason(only) == "eqa-failed"
    assert "2026 年第 1 次" in _part(only, "detail")
    assert reason(ua) == "eqa-failed"


def test_unqualified_facility_and_out_of_scope(client):
    answer = items(ask(client, code=["QS-JY-004", "QS-JY-107"]))
    plt = results(answer["QS-JY-004"])["Observation/pc-plt"]
    assert reason(plt) == "facility-not-qualified"
    a1c = results(answer["QS-JY-107"])["Observation/sq-a1c"]
    assert reason(a1c) == "out-of-scope"
    assert _part(answer["QS-JY-107"], "mark") == "★"


def test_cancelled_and_preliminary_results(client):
    answer = items(ask(client, code="QS-JY-202,QS-JY-101"))
    assert reason(results(answer["QS-JY-202"])["Observation/sq-crp"]) == "cancelled"
    assert reason(results(answer["QS-JY-101"])["Observation/sq-glu"]) == "not-final"


def test_local_code_of_the_asking_facility_is_mapped(client):
    # 青山县人民医院's 慧康 LIS code 1001 is the catalogue's WBC item
    answer = items(
        ask(client, **{"local-code": ["1001", "NOPE"], "facility": "qingshan-county-hospital"})
    )
    assert _part(answer["1001"], "code")["code"] == "QS-JY-001"
    assert _part(answer["1001"], "outcome") == "recognisable"
    assert reason(answer["NOPE"]) == "local-code-unmapped"
    # a result stored with LOINC only is found through the item's LOINC code
    hgb = items(ask(client, code="QS-JY-003"))["QS-JY-003"]
    assert "Observation/ch-hgb" in results(hgb)


def test_conclusion_is_never_recognised(client):
    ct = items(ask(client, code="QS-JC-001"))["QS-JC-001"]
    assert _part(ct, "outcome") == "recognisable"
    assert _part(ct, "recognises") == "result"
    report = results(ct)["DiagnosticReport/ct-chest"]
    excluded = [p["valueString"] for p in report if p["name"] == "excluded"]
    assert excluded == ["conclusion", "conclusionCode"]


def test_unknown_item_and_no_prior_result(client):
    answer = items(ask(client, code=["NOT-AN-ITEM", "QS-JC-004"]))
    assert reason(answer["NOT-AN-ITEM"]) == "not-in-catalogue"
    assert reason(answer["QS-JC-004"]) == "no-prior-result"
    assert _part(answer["QS-JC-004"], "outcome") == "not-recognisable"


def test_encounter_start_lists_every_item_with_a_result(client):
    answer = items(ask(client))
    assert set(answer) == {
        "QS-JY-001",
        "QS-JY-002",
        "QS-JY-003",
        "QS-JY-004",
        "QS-JY-101",
        "QS-JY-104",
        "QS-JY-107",
        "QS-JY-202",
        "QS-JC-001",
    }
    other = items(ask(client, f"/fhir/Patient/{OTHER_PATIENT}/$recognisable"))
    assert set(other) == {"QS-JY-001"}


@pytest.mark.parametrize(
    ("params", "status", "needle"),
    [
        ({"local-code": "1001"}, 400, "needs facility"),
        ({"facility": "nowhere"}, 400, "not a facility"),
        ({"setting": "ward"}, 400, "setting='ward'"),
        ({"at": "yesterday"}, 400, "at"),
        ({"colour": "red"}, 400, "colour"),
    ],
)
def test_bad_questions_are_refused_with_an_operation_outcome(client, params, status, needle):
    response = client.get(URL, params=params)
    assert response.status_code == status
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    assert needle in response.text


def test_unknown_patient_is_404(client):
    response = client.get("/fhir/Patient/nobody/$recognisable")
    assert response.status_code == 404
    assert response.json()["resourceType"] == "OperationOutcome"


def test_recognition_off_without_a_catalogue(tmp_path, database_url):
    consortium = ROOT / "fixtures" / "consortium.yaml"
    copy = tmp_path / "consortium.yaml"
    copy.write_text(consortium.read_text(encoding="utf-8"), encoding="utf-8")
    app = create_app(Settings(database_url=database_url, config=copy))
    try:
        with TestClient(app) as off:
            response = off.get(URL)
        assert response.status_code == 404
        assert "recognition is not configured" in response.text
    finally:
        app.state.engine.dispose()


def test_the_person_is_found_by_any_identifier(client):
    national_id = "urn:oid:2.16.156.10011.1.3|430999196409301289"  # the ingested CBC's
    body = ask(
        client, "/fhir/$recognisable", **{"patient-identifier": national_id, "code": "QS-JY-001"}
    )
    wbc = items(body)["QS-JY-001"]
    assert _part(wbc, "outcome") == "recognisable"
    assert len(results(wbc)) == 1
    unknown = client.get(
        "/fhir/$recognisable",
        params={"patient-identifier": "urn:oid:2.16.156.10011.1.3|430999190001011234"},
    )
    assert unknown.status_code == 404
    assert "430999190001011234" not in unknown.text  # an ID number is never echoed
    missing = client.get("/fhir/$recognisable", params={"code": "QS-JY-001"})
    assert missing.status_code == 400 and "patient-identifier" in missing.text


def test_specimen_differs_where_the_catalogue_says_it_matters(client):
    glu = items(ask(client, code="QS-JY-101"))["QS-JY-101"]
    found = results(glu)
    poct = found["Observation/sq-glu-poct"]
    assert reason(poct) == "specimen-differs"
    assert _part(poct, "detail") == "specimen BLD; the item needs SER, PLAS"
    assert _part(found["Observation/sq-glu-ser"], "recognisable") is True
    assert _part(glu, "outcome") == "recognisable"
    # the WBC item names no specimen: its results have none recorded and still count
    wbc = results(items(ask(client, code="QS-JY-001"))["QS-JY-001"])
    assert _part(wbc["Observation/sq-wbc-new"], "recognisable") is True


def test_each_answer_is_recorded_in_the_audit_log(client):
    factory = client.app.state.session_factory
    with factory() as session:
        before = session.execute(text("SELECT max(seq) FROM audit_record")).scalar_one()
    ask(client, code="QS-JY-001", facility="qingshan-county-hospital")
    with factory() as session:
        rows = session.execute(  # the body as its canonical text, whatever its stored form
            select(AuditRecord.body).where(AuditRecord.seq > before).order_by(AuditRecord.seq)
        ).scalars()
        bodies = [orjson.loads(b) for b in rows]
    [record] = [b for b in bodies if b["detail"].get("interaction") == "operation:recognisable"]
    assert record["action"] == "fhir.search"
    assert record["patients"] == [f"Patient/{PATIENT}"]
    assert {"Observation/sq-wbc-new", "Observation/sq-wbc-old"} <= set(record["entities"])
    # the parameters by name, never their values
    assert record["detail"]["params"] == "at,code,facility"
    assert "QS-JY-001" not in orjson.dumps(record).decode()


def test_consent_input_is_checked(client):
    """Bad consents are refused with the field named; nothing is stored."""
    url = "/recognition/consent"
    good = {
        "patient": PATIENT,
        "facility": "qingshan-county-hospital",
        "start": "2026-11-26T08:00:00+08:00",
        "end": "2026-12-03T00:00:00+08:00",
    }
    cases = [
        ({"end": None}, 400, "end"),
        ({"end": "2026-12-03T00:00:00"}, 400, "end"),  # no zone
        ({"start": "2026-12-04T00:00:00+08:00"}, 400, "end"),  # ends before it starts
        ({"facility": "nowhere"}, 400, "facility"),
        ({"patient": "nobody"}, 404, "patient"),
    ]
    for change, status, where in cases:
        body = {k: v for k, v in {**good, **change}.items() if v is not None}
        answer = client.post(url, json=body)
        assert answer.status_code == status, (change, answer.text)
        outcome = answer.json()
        assert outcome["resourceType"] == "OperationOutcome"
        assert where in answer.text, (change, answer.text)
    assert (
        client.get("/fhir/Consent", params={"patient": f"Patient/{PATIENT}"}).json()["total"] == 0
    )
    assert client.post("/recognition/consent/not-there/revoke", json={}).status_code == 404


def test_a_repeated_consent_stores_nothing(client):
    """A double click or a client's retry answers the consent in force (200) instead of
    storing a second one; a longer period, or a consent after a withdrawal, is new (201)."""
    import threading

    url = "/recognition/consent"
    body = {
        "patient": OTHER_PATIENT,
        "facility": "qingshan-county-hospital",
        "start": "2026-11-26T08:00:00+08:00",
        "end": "2026-12-03T00:00:00+08:00",
    }

    def stored() -> list[str]:
        found = client.get("/fhir/Consent", params={"patient": f"Patient/{OTHER_PATIENT}"})
        return sorted(e["resource"]["id"] for e in found.json().get("entry", []))

    first = client.post(url, json=body)
    assert first.status_code == 201, first.text
    again = client.post(url, json=body)
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["Location"] == first.headers["Location"]
    # inside the period already allowed: the same consent
    inside = client.post(url, json={**body, "start": "2026-11-27T08:00:00+08:00"})
    assert (inside.status_code, inside.json()["id"]) == (200, first.json()["id"])
    # two at once: one more consent, not two
    longer = {**body, "end": "2026-12-10T00:00:00+08:00"}
    answers: list[Any] = []
    threads = [
        threading.Thread(target=lambda: answers.append(client.post(url, json=longer)))
        for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(a.status_code for a in answers) == [200, 201], [a.text for a in answers]
    assert answers[0].json()["id"] == answers[1].json()["id"] != first.json()["id"]
    assert len(stored()) == 2
    # withdrawn: the same request stores a new consent
    for consent_id in stored():
        revoked = client.post(f"{url}/{consent_id}/revoke", json={})
        assert revoked.status_code == 200, revoked.text
    renewed = client.post(url, json=body)
    assert renewed.status_code == 201, renewed.text
    assert len(stored()) == 3
    client.post(f"{url}/{renewed.json()['id']}/revoke", json={})

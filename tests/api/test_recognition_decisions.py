"""POST /fhir/Patient/{id}/$recognition-decision and GET /recognition/rate over real HTTP on
the real database: decisions are checked against the catalogue, stored once per (patient,
order, item) as a row and a Task, and counted in the monthly 互认率."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from sqlalchemy import func, select

from adapter.store.audit_log import AuditRecord
from adapter.store.models import RecognitionDecision
from tests.api.recognition_fixtures import OTHER_PATIENT, PATIENT, seed

URL = f"/fhir/Patient/{PATIENT}/$recognition-decision"


@pytest.fixture
def seeded(client, app):
    seed(app.state.session_factory)
    return client


def params(**values: Any) -> dict[str, Any]:
    parts: list[dict[str, Any]] = []
    for key, value in values.items():
        name = key.replace("_", "-")
        if name == "prior":
            parts.append({"name": name, "valueReference": {"reference": value}})
        elif name == "decided-at":
            parts.append({"name": name, "valueDateTime": value})
        else:
            parts.append({"name": name, "valueString": value})
    return {"resourceType": "Parameters", "parameter": parts}


RECOGNISED = dict(
    order="MZ20261126-0007",
    item="QS-JY-001",
    facility="qingshan-county-hospital",
    doctor="D0412",
    department="全科医学科",
    decision="recognised",
    prior="Observation/sq-wbc-new",
    decided_at="2026-11-26T10:05:00+08:00",
)
REFUSED = dict(
    order="MZ20261126-0007",
    item="QS-JC-001",
    facility="qingshan-county-hospital",
    doctor="D0412",
    decision="not-recognised",
    reason="condition-changed",
    prior="DiagnosticReport/ct-chest",
    decided_at="2026-11-26T10:06:00+08:00",
)


def post(client, body: dict[str, Any], url: str = URL):
    return client.post(url, json=body, headers={"Content-Type": "application/fhir+json"})


def rows(app) -> int:
    with app.state.session_factory() as session:
        return session.execute(select(func.count()).select_from(RecognitionDecision)).scalar_one()


def test_recognised_item_is_a_task_with_the_mark_and_the_edition(seeded, app, fhir_valid):
    response = post(seeded, params(**RECOGNISED))
    assert response.status_code == 201, response.text
    task = response.json()
    fhir_valid(task)
    assert task["resourceType"] == "Task" and task["status"] == "completed"
    assert task["businessStatus"]["coding"][0]["code"] == "recognised"
    assert task["code"]["coding"][0]["code"] == "QS-JY-001"
    assert task["for"] == {"reference": f"Patient/{PATIENT}"}
    assert task["focus"] == {"reference": "Observation/sq-wbc-new"}
    assert task["basedOn"][0]["identifier"]["value"] == "MZ20261126-0007"
    assert task["authoredOn"].startswith("2026-11-26T02:05:00")
    assert {"type": {"text": "catalogue-edition"}, "valueString": "2026.2"} in task["input"]
    assert task["meta"]["tag"][0]["code"] == "HR"
    assert "statusReason" not in task
    assert response.headers["location"].endswith(f"/fhir/Task/{task['id']}/_history/1")
    # served like any resource, and found by patient
    read = seeded.get(f"/fhir/Task/{task['id']}")
    assert read.status_code == 200 and read.json()["id"] == task["id"]
    found = seeded.get("/fhir/Task", params={"patient": f"Patient/{PATIENT}"}).json()
    assert [e["resource"]["id"] for e in found["entry"]] == [task["id"]]
    assert rows(app) == 1


def test_the_same_decision_twice_is_recorded_once(seeded, app):
    first = post(seeded, params(**RECOGNISED))
    again = post(seeded, params(**RECOGNISED))
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    assert again.json()["meta"]["versionId"] == "1"
    assert rows(app) == 1
    # without decided-at the first recording's time is kept, so it is still the same
    undated = {k: v for k, v in RECOGNISED.items() if k != "decided_at"}
    third = post(seeded, params(**undated))
    assert third.status_code == 200 and third.json()["meta"]["versionId"] == "1"
    history = seeded.get(f"/fhir/Task/{first.json()['id']}/_history").json()
    assert history["total"] == 1


def test_a_revised_decision_is_a_new_version_of_the_same_task(seeded, app):
    first = post(seeded, params(**RECOGNISED)).json()
    revised = {**RECOGNISED, "decision": "not-recognised", "reason": "emergency"}
    response = post(seeded, params(**revised))
    assert response.status_code == 200, response.text
    task = response.json()
    assert task["id"] == first["id"] and task["meta"]["versionId"] == "2"
    assert task["statusReason"]["coding"][0]["code"] == "emergency"
    assert rows(app) == 1


def test_not_recognised_carries_the_coded_reason_and_the_patient_text(seeded, fhir_valid):
    response = post(seeded, params(**REFUSED))
    assert response.status_code == 201, response.text
    task = response.json()
    fhir_valid(task)
    assert task["businessStatus"]["coding"][0]["code"] == "not-recognised"
    reason = task["statusReason"]["coding"][0]
    assert reason["code"] == "condition-changed"
    assert reason["display"].startswith("病情变化")
    assert task["output"][0]["type"]["text"] == "patient-explanation"
    assert "病情有变化" in task["output"][0]["valueString"]
    assert "meta" not in task or "tag" not in task["meta"]


@pytest.mark.parametrize(
    ("change", "location", "needle"),
    [
        ({"reason": "too-expensive"}, "reason", "not one of"),
        ({"reason": "other"}, "reason-text", "needs reason-text"),
        ({"item": "QS-XX-999"}, "item", "not in the catalogue"),
        ({"facility": "elsewhere"}, "facility", "not a facility"),
        ({"decision": "maybe"}, "decision", "one of recognised, not-recognised"),
        ({"prior": "Observation/nothing"}, "prior", "not a stored result"),
        ({"prior": "Observation/sq-wbc-p2"}, "prior", f"not a result of Patient/{PATIENT}"),
        ({"colour": "red"}, "colour", "not known here"),
        ({"prior": "Observation/sq-wbc-new"}, "prior", "not a result of item QS-JC-001"),
        # longer than the recognition_decision column: refused on both databases alike
        ({"order": "M" * 256}, "order", "order is 256 characters; at most 255"),
        ({"doctor": "D" * 256}, "doctor", "doctor is 256 characters; at most 255"),
        ({"department": "科" * 256}, "department", "department is 256 characters; at most 255"),
    ],
)
def test_a_decision_the_catalogue_does_not_allow_is_refused(seeded, app, change, location, needle):
    response = post(seeded, params(**{**REFUSED, **change}))
    assert response.status_code == 400, response.text
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert needle in response.text
    assert location in {loc for i in outcome["issue"] for loc in i.get("location", [])}
    assert rows(app) == 0


def test_recognised_needs_its_prior_result_and_no_reason(seeded):
    no_prior = {k: v for k, v in RECOGNISED.items() if k != "prior"}
    assert "names the prior result" in post(seeded, params(**no_prior)).text
    with_reason = {**RECOGNISED, "reason": "emergency"}
    assert "takes no reason" in post(seeded, params(**with_reason)).text


def test_unknown_patient_and_a_body_that_is_not_parameters(seeded):
    assert (
        post(seeded, params(**RECOGNISED), "/fhir/Patient/nobody/$recognition-decision").status_code
        == 404
    )
    response = post(seeded, {"resourceType": "Task"})
    assert response.status_code == 400 and "Parameters" in response.text


def test_monthly_rate_per_facility_and_item(seeded):
    post(seeded, params(**RECOGNISED))
    post(seeded, params(**REFUSED))
    other = {
        **REFUSED,
        "order": "MZ20261127-0001",
        "reason": "emergency",
        "decided_at": "2026-11-30T23:30:00+08:00",
    }
    assert post(seeded, params(**other)).status_code == 201
    # 2026-12-01 00:30 in Shanghai is December, though still November in UTC
    december = {**RECOGNISED, "order": "MZ20261201-0001", "decided_at": "2026-12-01T00:30:00+08:00"}
    assert post(seeded, params(**december)).status_code == 201
    body = seeded.get("/recognition/rate", params={"month": "2026-11"}).json()
    assert (body["eligible"], body["recognised"], body["rate"]) == (3, 1, 0.3333)
    by_item = {i["item"]: i for i in body["items"]}
    assert by_item["QS-JY-001"]["rate"] == 1.0
    assert by_item["QS-JC-001"] == {
        "facility": "qingshan-county-hospital",
        "item": "QS-JC-001",
        "shown": 0,
        "viewed": 0,
        "eligible": 2,
        "recognised": 0,
        "not_recognised": 2,
        "rate": 0.0,
        "tests_avoided": 0,
        "cost_avoided": None,
        "reasons": {"condition-changed": 1, "emergency": 1},
    }
    assert by_item["QS-JY-001"]["cost_avoided"] == "20.00"
    dec = seeded.get("/recognition/rate", params={"month": "2026-12"}).json()
    assert (dec["eligible"], dec["recognised"]) == (1, 1)
    assert seeded.get("/recognition/rate", params={"month": "2026-13"}).status_code == 400
    assert seeded.get("/recognition/rate").status_code == 400


def test_decisions_of_another_patient_stay_theirs(seeded, app):
    url = f"/fhir/Patient/{OTHER_PATIENT}/$recognition-decision"
    body = params(**{**RECOGNISED, "prior": "Observation/sq-wbc-p2"})
    assert post(seeded, body, url).status_code == 201
    assert post(seeded, params(**RECOGNISED)).status_code == 201  # same order and item
    assert rows(app) == 2


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        # taken 2026-10-01: its 7-day outpatient window is over
        ({"prior": "Observation/sq-wbc-old"}, "cannot be recognised: expired"),
        # the same result inpatient (3 days) on 2026-11-28 is over too
        (
            {"setting": "inpatient", "decided_at": "2026-11-28T09:00:00+08:00"},
            "cannot be recognised: expired",
        ),
        # 柳河's RBC after its EQA lapsed
        (
            {"item": "QS-JY-002", "prior": "Observation/lh-rbc"},
            "cannot be recognised: eqa-expired",
        ),
        ({"setting": "ward"}, "setting='ward'"),
    ],
)
def test_only_a_recognisable_result_can_be_recognised(seeded, app, change, needle):
    response = post(seeded, params(**{**RECOGNISED, **change}))
    assert response.status_code == 400, response.text
    assert needle in response.text
    assert rows(app) == 0
    # the same result may still be declined with a reason
    declined = {**RECOGNISED, **change, "decision": "not-recognised", "reason": "too-old"}
    if "setting" not in change or change["setting"] != "ward":
        assert post(seeded, params(**declined)).status_code == 201


def test_results_after_the_asked_moment_are_not_prior_results(seeded):
    url = f"/fhir/Patient/{PATIENT}/$recognisable"
    body = seeded.get(url, params={"code": "QS-JY-001", "at": "2026-10-02T09:00:00+08:00"}).json()
    item = next(p["part"] for p in body["parameter"] if p["name"] == "item")
    refs = [
        q["valueReference"]["reference"]
        for r in item
        if r["name"] == "result"
        for q in r["part"]
        if q["name"] == "reference"
    ]
    assert refs == ["Observation/sq-wbc-old"]


def shown(client, **values: Any):
    parts: list[dict[str, Any]] = []
    for key, value in values.items():
        for one in value if isinstance(value, list) else [value]:
            parts.append({"name": key.replace("_", "-"), "valueString": one})
    return client.post(
        f"/fhir/Patient/{PATIENT}/$recognisable",
        json={"resourceType": "Parameters", "parameter": parts},
        headers={"Content-Type": "application/fhir+json"},
    )


def reminders(app) -> list[tuple[str, str, str, bool]]:
    from adapter.store.models import RecognitionReminder as R

    with app.state.session_factory() as session:
        rows = session.execute(select(R.context, R.item_code, R.trigger, R.recognisable))
        return sorted(tuple(r) for r in rows)


def test_posted_question_answers_the_same_and_logs_the_reminder_once(seeded, app):
    asked = dict(
        code=["QS-JY-001", "QS-JC-004"],
        facility="qingshan-county-hospital",
        context="MZ20261126-0007",
        doctor="D0412",
        at="2026-11-26T10:00:00+08:00",
    )
    first = shown(seeded, **asked)
    assert first.status_code == 200, first.text
    got = seeded.get(
        f"/fhir/Patient/{PATIENT}/$recognisable",
        params={"code": "QS-JY-001,QS-JC-004", "at": "2026-11-26T10:00:00+08:00"},
    )
    assert first.json() == got.json()  # the same answer as the GET
    assert shown(seeded, **asked).status_code == 200  # the HIS asks again: logged once
    assert reminders(app) == [
        ("MZ20261126-0007", "QS-JC-004", "order", False),
        ("MZ20261126-0007", "QS-JY-001", "order", True),
    ]
    # encounter start: no item asked, every item with a result is logged for the encounter
    start = shown(
        seeded, facility="qingshan-county-hospital", context="JZ001", at="2026-11-26T09:00:00+08:00"
    )
    assert start.status_code == 200
    assert {(c, t) for c, _, t, _ in reminders(app)} == {
        ("MZ20261126-0007", "order"),
        ("JZ001", "encounter"),
    }
    # shown and eligible (the WBC reminder), not decided: counts against the rate
    body = seeded.get("/recognition/rate", params={"month": "2026-11"}).json()
    wbc = next(i for i in body["items"] if i["item"] == "QS-JY-001")
    assert (wbc["shown"], wbc["eligible"], wbc["recognised"], wbc["rate"]) == (2, 1, 0, 0.0)
    # the doctor then recognises it for the same order: still one eligible item
    assert post(seeded, params(**RECOGNISED)).status_code == 201
    body = seeded.get("/recognition/rate", params={"month": "2026-11"}).json()
    wbc = next(i for i in body["items"] if i["item"] == "QS-JY-001")
    assert (wbc["eligible"], wbc["recognised"], wbc["rate"]) == (1, 1, 1.0)


@pytest.mark.parametrize(
    ("values", "needle"),
    [
        ({"code": "QS-JY-001", "facility": "qingshan-county-hospital"}, "'context' is required"),
        ({"code": "QS-JY-001", "context": "X"}, "'facility' is required"),
        (
            {"context": "X", "facility": "qingshan-county-hospital", "trigger": "maybe"},
            "trigger 'maybe'",
        ),
        ({"context": "X", "facility": "qingshan-county-hospital", "colour": "red"}, "not known"),
        # longer than the recognition_reminder column: refused on both databases alike
        (
            {"context": "X" * 256, "facility": "qingshan-county-hospital"},
            "context is 256 characters; at most 255",
        ),
        (
            {"context": "X", "facility": "qingshan-county-hospital", "doctor": "D" * 256},
            "doctor is 256 characters; at most 255",
        ),
    ],
)
def test_posted_question_needs_its_context_and_facility(seeded, app, values, needle):
    response = shown(seeded, **values)
    assert response.status_code == 400 and needle in response.text
    assert reminders(app) == []


def viewed(client, **values: Any):
    parts = [{"name": k.replace("_", "-"), "valueString": v} for k, v in values.items()]
    return client.post(
        f"/fhir/Patient/{PATIENT}/$recognition-viewed",
        json={"resourceType": "Parameters", "parameter": parts},
        headers={"Content-Type": "application/fhir+json"},
    )


def test_viewed_breakdowns_cost_and_spreadsheets(seeded, app):
    """已查阅 is recorded once per reminder; the rate is broken down by department and
    doctor; the cost avoided uses the catalogue's prices; CSV and XLSX hold the same."""
    import io

    from openpyxl import load_workbook

    asked = dict(
        code="QS-JY-001",
        facility="qingshan-county-hospital",
        context="MZ20261126-0007",
        doctor="D0412",
        department="全科医学科",
        at="2026-11-26T10:00:00+08:00",
    )
    assert shown(seeded, **asked).status_code == 200
    seen = dict(
        facility="qingshan-county-hospital",
        context="MZ20261126-0007",
        item="QS-JY-001",
        result="Observation/sq-wbc-new",
    )
    assert viewed(seeded, **seen).status_code == 200
    assert viewed(seeded, **seen).status_code == 200  # again: the first view is kept
    nothing = viewed(seeded, **{**seen, "context": "MZ-NEVER-SHOWN"})
    assert nothing.status_code == 404 and "no reminder was shown" in nothing.text
    assert viewed(seeded, facility="qingshan-county-hospital").status_code == 400
    assert post(seeded, params(**RECOGNISED)).status_code == 201
    other_doctor = {**REFUSED, "doctor": "D0999", "department": "呼吸内科"}
    assert post(seeded, params(**other_doctor)).status_code == 201

    body = seeded.get(
        "/recognition/rate", params={"month": "2026-11", "by": "department,doctor"}
    ).json()
    assert body["by"] == ["department", "doctor"] and body["viewed"] == 1
    assert body["tests_avoided"] == 1 and body["cost_avoided"] == "20.00"
    groups = {(g["department"], g["doctor"]): g for g in body["items"]}
    assert set(groups) == {("全科医学科", "D0412"), ("呼吸内科", "D0999")}
    general = groups[("全科医学科", "D0412")]
    assert (general["shown"], general["viewed"], general["eligible"], general["rate"]) == (
        1,
        1,
        1,
        1.0,
    )
    assert groups[("呼吸内科", "D0999")]["reasons"] == {"condition-changed": 1}
    assert "item" not in general and "facility" not in general
    bad = seeded.get("/recognition/rate", params={"month": "2026-11", "by": "ward"})
    assert bad.status_code == 400

    csv_answer = seeded.get(
        "/recognition/rate", params={"month": "2026-11", "by": "doctor", "format": "csv"}
    )
    assert csv_answer.headers["content-type"].startswith("text/csv")
    lines = csv_answer.content.decode("utf-8-sig").splitlines()
    assert lines[0].startswith("医生 doctor,提醒 shown,查阅 viewed")
    assert lines[1].startswith("D0412,1,1,1,1,0,1.0,1,20.00")
    xlsx = seeded.get(
        "/recognition/rate", params={"month": "2026-11", "by": "doctor", "format": "xlsx"}
    )
    sheet = load_workbook(io.BytesIO(xlsx.content)).active
    cells = [[c.value for c in row] for row in sheet.iter_rows()]
    assert cells[0][0] == "医生 doctor" and cells[1][:3] == ["D0412", 1, 1]
    assert cells[1][7] == 1 and float(cells[1][8]) == 20.0  # tests and yuan avoided


def test_a_result_changed_after_recognition_is_listed(seeded, app):
    """The lab corrects, then withdraws, the WBC a doctor recognised: the decision is listed
    with the result's status now; a result that did not change, or a decision not to
    recognise, is not."""
    from datetime import UTC, datetime

    from adapter.store import save_resources
    from tests.api.recognition_fixtures import RESULTS

    assert post(seeded, params(**RECOGNISED)).status_code == 201
    assert post(seeded, params(**REFUSED)).status_code == 201
    assert seeded.get("/recognition/corrections").json()["total"] == 0

    wbc = next(r for _, rs in RESULTS for r in rs if r["id"] == "sq-wbc-new")
    corrected = {**wbc, "status": "corrected", "valueQuantity": {**wbc["valueQuantity"]}}
    corrected["valueQuantity"]["value"] = wbc["valueQuantity"]["value"] + 3
    with app.state.session_factory.begin() as session:
        save_resources(
            session,
            [corrected],
            message_id=None,
            now=datetime.now(UTC),
            facility_id="shiqiao-township-centre",
        )
    body = seeded.get("/recognition/corrections").json()
    assert (body["total"], body["withdrawn"]) == (1, 0)
    [entry] = body["decisions"]
    assert entry["prior"] == "Observation/sq-wbc-new" and entry["status"] == "corrected"
    assert entry["order"] == RECOGNISED["order"] and entry["item"] == "QS-JY-001"
    assert entry["version"] == 2

    withdrawn = {**corrected, "status": "entered-in-error"}
    with app.state.session_factory.begin() as session:
        save_resources(
            session,
            [withdrawn],
            message_id=None,
            now=datetime.now(UTC),
            facility_id="shiqiao-township-centre",
        )
    body = seeded.get(
        "/recognition/corrections", params={"facility": "qingshan-county-hospital"}
    ).json()
    assert body["withdrawn"] == 1 and body["decisions"][0]["status"] == "entered-in-error"
    assert (
        seeded.get("/recognition/corrections", params={"since": "2026-12-01"}).json()["total"] == 0
    )
    assert seeded.get("/recognition/corrections", params={"facility": "x"}).status_code == 400


def test_a_posted_question_is_recorded_in_the_audit_log_too(seeded, app):
    answer = shown(
        seeded,
        code="QS-JY-001",
        facility="qingshan-county-hospital",
        context="MZ20261126-0099",
        at="2026-11-26T10:00:00+08:00",
    )
    assert answer.status_code == 200, answer.text
    with app.state.session_factory() as session:
        bodies = [
            orjson.loads(b)
            for b in session.execute(select(AuditRecord.body).order_by(AuditRecord.seq)).scalars()
        ]
    [record] = [b for b in bodies if b["detail"].get("interaction") == "operation:recognisable"]
    assert record["action"] == "fhir.search" and record["patients"] == [f"Patient/{PATIENT}"]
    assert "Observation/sq-wbc-new" in record["entities"]
    assert record["detail"]["params"] == "at,code,context,facility"
    assert "MZ20261126-0099" not in orjson.dumps(record).decode()

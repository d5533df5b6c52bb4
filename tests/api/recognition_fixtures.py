"""Stored results for the recognition tests: one person's results from the example
consortium's facilities (fixtures/recognition.yaml qualifies them), written with the
facility that sent them, as the pipeline does."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from adapter.store import save_resources

NS = "https://qingshan.example.cn/fhir/sid"
LOINC = "http://loinc.org"
PATIENT = "rec-p1"
OTHER_PATIENT = "rec-p2"


def lab(
    oid: str,
    local_system: str,
    local_code: str,
    when: str,
    *,
    loinc: str | None = None,
    status: str = "final",
    patient: str = PATIENT,
) -> dict[str, Any]:
    coding = [{"system": f"{NS}/{local_system}", "code": local_code}]
    if loinc:
        coding.append({"system": LOINC, "code": loinc})
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": status,
        "code": {"coding": coding},
        "subject": {"reference": f"Patient/{patient}"},
        "effectiveDateTime": when,
        "valueQuantity": {"value": 5.0},
    }


def specimen(sid: str, code: str) -> dict[str, Any]:
    v2_0487 = "http://terminology.hl7.org/CodeSystem/v2-0487"
    return {
        "resourceType": "Specimen",
        "id": sid,
        "type": {"coding": [{"system": v2_0487, "code": code}]},
        "subject": {"reference": f"Patient/{PATIENT}"},
    }


def with_specimen(body: dict[str, Any], sid: str) -> dict[str, Any]:
    return {**body, "specimen": {"reference": f"Specimen/{sid}"}}


def exam(rid: str, local_code: str, when: str) -> dict[str, Any]:
    return {
        "resourceType": "DiagnosticReport",
        "id": rid,
        "status": "final",
        "code": {"coding": [{"system": f"{NS}/county-hospital/exam-item", "code": local_code}]},
        "subject": {"reference": f"Patient/{PATIENT}"},
        "effectiveDateTime": when,
        "conclusion": "右肺上叶磨玻璃结节",
        "conclusionCode": [{"text": "阳性"}],
    }


# (facility that sent it, resources)
RESULTS: list[tuple[str | None, list[dict[str, Any]]]] = [
    (
        None,
        [
            {"resourceType": "Patient", "id": PATIENT, "gender": "female"},
            {"resourceType": "Patient", "id": OTHER_PATIENT, "gender": "male"},
        ],
    ),
    (
        "shiqiao-township-centre",
        [
            # WBC by local code only (no LOINC): found through the catalogue's local codes
            lab("sq-wbc-new", "shiqiao/lab-item", "WBC", "2026-11-24T08:45:00+08:00"),
            lab("sq-wbc-old", "shiqiao/lab-item", "WBC", "2026-10-01T08:45:00+08:00"),
            # HbA1c is a province-scope item; 石桥 takes part in consortium and city only
            lab("sq-a1c", "shiqiao/lab-item", "HBA1C", "2026-11-20T09:00:00+08:00", loinc="4548-4"),
            # a cancelled CRP and a preliminary glucose
            lab(
                "sq-crp", "shiqiao/lab-item", "CRP", "2026-11-25T09:00:00+08:00", status="cancelled"
            ),
            lab(
                "sq-glu",
                "shiqiao/lab-item",
                "GLU",
                "2026-11-25T09:00:00+08:00",
                status="preliminary",
            ),
            # glucose needs serum or plasma: a fingertip whole-blood one is not recognised
            specimen("sq-sp-bld", "BLD"),
            specimen("sq-sp-ser", "SER"),
            with_specimen(
                lab("sq-glu-poct", "shiqiao/lab-item", "GLU", "2026-11-24T07:00:00+08:00"),
                "sq-sp-bld",
            ),
            with_specimen(
                lab("sq-glu-ser", "shiqiao/lab-item", "GLU", "2026-11-23T07:00:00+08:00"),
                "sq-sp-ser",
            ),
            # another person's WBC: never part of this person's answer
            lab(
                "sq-wbc-p2",
                "shiqiao/lab-item",
                "WBC",
                "2026-11-25T08:45:00+08:00",
                patient=OTHER_PATIENT,
            ),
        ],
    ),
    (
        "liuhe-township-centre",
        [
            # 柳河's blood-count EQA lapsed on 2026-09-19: a November RBC is not recognisable
            lab("lh-rbc", "liuhe/lab-item", "RBC", "2026-11-23T10:00:00+08:00", loinc="789-8"),
            # a September RBC was taken while the EQA was in force
            lab("lh-rbc-sep", "liuhe/lab-item", "RBC", "2026-09-19T10:00:00+08:00"),
            # 柳河 failed the 2026 chemistry EQA (in force 2026-04-15 .. 2026-10-14)
            lab("lh-ua", "liuhe/lab-item", "2004", "2026-10-10T10:00:00+08:00"),
        ],
    ),
    (
        "qingshan-county-hospital",
        [
            exam("ct-chest", "CT0105", "2026-11-21T14:30:00+08:00"),
            # HGB by LOINC only (the county LIS code table mapped it)
            lab(
                "ch-hgb",
                "county-hospital/lab-item",
                "X-UNLISTED",
                "2026-11-24T07:00:00+08:00",
                loinc="718-7",
            ),
        ],
    ),
    (
        # a hospital outside the catalogue's qualifications
        "city-private-clinic",
        [lab("pc-plt", "private/lab-item", "PLT", "2026-11-24T07:00:00+08:00", loinc="777-3")],
    ),
]


def seed(factory: sessionmaker[Session]) -> None:
    now = datetime(2026, 11, 26, tzinfo=UTC)
    for facility, resources in RESULTS:
        with factory.begin() as session:
            save_resources(session, resources, message_id=None, now=now, facility_id=facility)

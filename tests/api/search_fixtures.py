"""A small linked record set for the search-result and chaining tests: one organisation,
two patients, a practitioner, an encounter, five observations, a report, a provenance,
a referral ServiceRequest. Saved one by one so that lastUpdated is distinct."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from adapter.store import create_message, save_resources

MRN = "urn:oid:1.2.156.1.qs.mrn"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
LOINC = "http://loinc.org"
DIRECTION = "https://yigongti-fhir-adapter.github.io/fhir/CodeSystem/referral-direction"
TAG = "https://yigongti-fhir-adapter.github.io/fhir/CodeSystem/tags"
PROFILE = "http://example.org/StructureDefinition/cn-patient"
T0 = datetime(2026, 6, 1, tzinfo=UTC)
MESSAGE_ID = "7d0c3f8e-1b2a-4c5d-9e8f-0a1b2c3d4e5f"


def _obs(oid: str, subject: dict[str, Any], when: Any, code: dict[str, Any], **extra: Any) -> dict:
    body: dict[str, Any] = {"resourceType": "Observation", "id": oid, "status": "final"}
    body["code"] = code
    body["subject"] = subject
    body.update(when)
    body.update(extra)
    return body


def resources() -> list[dict[str, Any]]:
    pa = {"reference": "Patient/pa"}
    hb = {"coding": [{"system": LOINC, "code": "718-7", "display": "Hemoglobin"}]}
    return [
        {"resourceType": "Organization", "id": "org1", "name": "青山县人民医院"},
        # a recognition consent (adapter/recognition/consent.py), its facility by reference
        {
            "resourceType": "Consent",
            "id": "consent1",
            "status": "active",
            "scope": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                        "code": "patient-privacy",
                    }
                ]
            },
            "category": [{"coding": [{"system": LOINC, "code": "59284-0"}]}],
            "patient": pa,
            "dateTime": "2026-05-30T09:00:00+08:00",
            "performer": [pa],
            "organization": [{"reference": "Organization/org1"}],
            "policy": [{"uri": "https://yigongti-fhir-adapter.github.io/fhir/policy/recognition"}],
            "provision": {
                "type": "permit",
                "period": {"start": "2026-05-30T09:00:00+08:00", "end": "2026-06-30"},
                "actor": [
                    {
                        "role": {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                    "code": "IRCP",
                                }
                            ]
                        },
                        "reference": {"reference": "Organization/org1"},
                    }
                ],
                "action": [
                    {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/consentaction",
                                "code": "access",
                            }
                        ]
                    }
                ],
                "purpose": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/v3-ActReason",
                        "code": "TREAT",
                    }
                ],
            },
        },
        {
            "resourceType": "Patient",
            "id": "pa",
            "meta": {
                "tag": [{"system": TAG, "code": "vip"}],
                "profile": [PROFILE],
                "security": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality",
                        "code": "R",
                    }
                ],
            },
            "identifier": [
                {
                    "system": MRN,
                    "value": "A-1",
                    "type": {"coding": [{"system": V2_0203, "code": "MR"}], "text": "病案号"},
                }
            ],
            "name": [{"family": "张", "given": ["三"]}],
            "birthDate": "1970-01-01",
            "managingOrganization": {"reference": "Organization/org1"},
        },
        {
            "resourceType": "Patient",
            "id": "pb",
            "identifier": [{"system": MRN, "value": "B-2"}],
            "name": [{"family": "李", "given": ["四"]}],
            "birthDate": "1960-01-01",
        },
        {"resourceType": "Practitioner", "id": "dr1", "name": [{"family": "王"}]},
        {
            "resourceType": "Encounter",
            "id": "enc1",
            "status": "finished",
            "class": {"code": "AMB"},
            "subject": pa,
        },
        _obs(
            "oa1",
            pa,
            {"effectiveDateTime": "2026-05-03T10:00:00+08:00"},
            hb,
            performer=[{"reference": "Practitioner/dr1"}],
            encounter={"reference": "Encounter/enc1"},
            valueQuantity={"value": 135, "unit": "g/L"},
            note=[{"text": "复查"}],
            text={
                "status": "generated",
                "div": '<div xmlns="http://www.w3.org/1999/xhtml">Hb 135</div>',
            },
        ),
        _obs(
            "oa2",
            pa,
            {"effectiveDateTime": "2026-05-05T08:00:00+08:00"},
            {"text": "血常规"},  # a code with only text
            valueCodeableConcept={"text": "阴性"},
        ),
        _obs(
            "oa3",
            pa,
            {
                "effectivePeriod": {
                    "start": "2026-04-01T08:00:00+08:00",
                    "end": "2026-04-02T08:00:00+08:00",
                }
            },
            {"coding": [{"system": LOINC, "code": "2345-7"}]},
        ),
        _obs(
            "ob1",
            {"display": "某患者"},  # a subject with only a display
            {"effectiveDateTime": "2026-05-04T09:00:00+08:00"},
            hb,
        ),
        _obs(
            "ob2",
            {"reference": "Patient/pb"},
            {"effectiveDateTime": "2026-05-01T09:00:00+08:00"},
            hb,
            performer=[{"identifier": {"system": "urn:oid:1.2.156.1.qs.staff", "value": "D-9"}}],
        ),
        {
            "resourceType": "DiagnosticReport",
            "id": "rep1",
            "status": "final",
            "code": {"text": "血常规报告"},
            "subject": pa,
            "effectiveDateTime": "2026-05-06T08:00:00+08:00",
            "result": [{"reference": "Observation/oa1"}, {"reference": "Observation/oa2"}],
        },
        {
            "resourceType": "Provenance",
            "id": "prov1",
            "target": [{"reference": "Observation/oa1"}],
            "recorded": "2026-05-03T10:05:00+08:00",
            "agent": [{"who": {"reference": "Organization/org1"}}],
        },
        {
            "resourceType": "ServiceRequest",
            "id": "sr1",
            "status": "active",
            "intent": "order",
            "category": [{"coding": [{"system": DIRECTION, "code": "up"}]}],
            "subject": pa,
        },
        {
            "resourceType": "ServiceRequest",
            "id": "sr2",
            "status": "active",
            "intent": "order",
            "category": [{"coding": [{"system": "urn:oid:1.2.156.1.qs.other", "code": "x"}]}],
            "subject": {"reference": "Patient/pb"},
        },
    ]


def seed(factory: sessionmaker[Session]) -> None:
    with factory.begin() as session:
        create_message(
            session,
            source_system="his",
            facility_id=None,
            raw=b"x",
            content_type="text/plain",
            sha256="0" * 64,
            detected_format=None,
            encoding=None,
            received_at=T0,
            message_id=MESSAGE_ID,
        )
    for i, resource in enumerate(resources()):
        message = MESSAGE_ID if resource["id"] in ("pa", "oa1") else None
        with factory.begin() as session:
            save_resources(session, [resource], message_id=message, now=T0 + timedelta(minutes=i))

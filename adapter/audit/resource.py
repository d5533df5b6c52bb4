"""An audit record as a FHIR R4 ``AuditEvent`` shaped after IHE BALP (Basic Audit Log
Patterns): the Create / Read / Query patterns (and their Patient variants when the record
names patients) for stores, reads and searches, Export for deliveries (the disclosure,
source side), Import for receipts. The record's ``X-Request-Id`` / correlation id is the
BALP ``XrequestId`` entity, so every AuditEvent of one message can be found by it.
"""

from __future__ import annotations

from typing import Any

import orjson

BALP = "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit."
BALP_ENTITY_TYPE = "https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType"
DCM = "http://dicom.nema.org/resources/ontology/DCM"
EVENT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
INTERACTION = "http://hl7.org/fhir/restful-interaction"
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"
ACTION_SYSTEM = "https://yigongti-fhir-adapter.github.io/fhir/CodeSystem/audit-action"

_WHY = ("status", "cause", "codes")  # detail that says why an outcome was not a success
OUTCOMES = {"success": "0", "warning": "4", "failure": "8"}

_REST = (EVENT_TYPE, "rest", "RESTful Operation")
_IMPORT = (DCM, "110107", "Import")
_EXPORT = (DCM, "110106", "Export")
_ACTIVITY = (DCM, "110100", "Application Activity")
_AUDIT_USED = (DCM, "110101", "Audit Log Used")
_AUTHENTICATION = (DCM, "110114", "User Authentication")
_SECURITY_ALERT = (DCM, "110113", "Security Alert")

# action -> (type, AuditEvent.action, BALP profile without / with patients)
KINDS: dict[str, tuple[tuple[str, str, str], str, str | None, str | None]] = {
    "message.received": (_IMPORT, "C", None, None),
    "message.translated": (_IMPORT, "E", None, None),
    "message.quarantined": (_IMPORT, "C", None, None),
    "message.reprocessed": (_IMPORT, "E", None, None),
    "message.stored": (_REST, "C", "Create", "PatientCreate"),
    "delivery.delivered": (_EXPORT, "R", None, "PrivacyDisclosure.Source"),
    "delivery.retry": (_EXPORT, "R", None, None),
    "delivery.dead": (_EXPORT, "R", None, None),
    "delivery.replayed": (_EXPORT, "E", None, None),
    "delivery.paused": (_EXPORT, "E", None, None),
    "delivery.resumed": (_EXPORT, "E", None, None),
    "delivery.pruned": (_ACTIVITY, "D", None, None),  # outbox rows deleted (decision 0064)
    "fhir.read": (_REST, "R", "Read", "PatientRead"),
    "fhir.search": (_REST, "E", "Query", "PatientQuery"),
    "referral.changed": (_REST, "U", "Update", "PatientUpdate"),
    "referral.refused": (_REST, "U", None, None),
    "consent.recorded": (_REST, "C", "Create", "PatientCreate"),
    "consent.revoked": (_REST, "U", "Update", "PatientUpdate"),
    "recognition.marked": (_REST, "U", "Update", "PatientUpdate"),
    "config.loaded": (_ACTIVITY, "E", None, None),
    "auth.token": (_AUTHENTICATION, "E", None, None),
    "auth.denied": (_SECURITY_ALERT, "E", None, None),
    "connection.refused": (_SECURITY_ALERT, "E", None, None),
}


def type_code(action: str) -> str:
    kind = KINDS.get(action)
    return (kind[0] if kind else _AUDIT_USED)[1]


def audit_event(seq: int, body_text: str) -> dict[str, Any]:
    body = orjson.loads(body_text)
    action = body["action"]
    (system, code, display), letter, plain, with_patient = KINDS.get(
        action, (_AUDIT_USED, "R", None, None)
    )
    detail = body.get("detail") or {}
    patients = body.get("patients") or []
    profile = with_patient if patients and with_patient else plain
    subtype = [{"system": ACTION_SYSTEM, "code": action}]
    if system == EVENT_TYPE:
        interaction = detail.get("interaction") or ("create" if letter == "C" else "read")
        subtype.insert(0, {"system": INTERACTION, "code": interaction})
    resource: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": str(seq),
        "type": {"system": system, "code": code, "display": display},
        "subtype": subtype,
        "action": letter,
        "recorded": body["recorded"],
        "outcome": OUTCOMES.get(body["outcome"], "8"),
        "agent": _agents(body),
        "source": {
            "site": body.get("facility") or "consortium",
            "observer": {"display": "yigongti-fhir-adapter"},
            "type": [{"system": SOURCE_TYPE, "code": "4", "display": "Application Server"}],
        },
        "entity": _entities(body, detail),
    }
    if profile:
        resource["meta"] = {"profile": [BALP + profile]}
    why = ", ".join(f"{k}={v}" for k, v in sorted(detail.items()) if k in _WHY and v)
    if body["outcome"] != "success" and why:
        resource["outcomeDesc"] = why
    return resource


def _agents(body: dict[str, Any]) -> list[dict[str, Any]]:
    who = body.get("client") or body["actor"]
    requestor: dict[str, Any] = {
        "type": {"coding": [_requestor_role(body)]},
        "who": {"identifier": {"value": who}, "display": body["actor"]},
        "requestor": True,
    }
    if body.get("address"):
        requestor["network"] = {"address": body["address"].rsplit(":", 1)[0], "type": "2"}
    agents = [requestor]
    destination = (body.get("detail") or {}).get("destination")
    if destination:  # a delivery: the receiving system is the recipient
        agents.append(
            {
                "type": {"coding": [{"system": PARTICIPATION, "code": "IRCP"}]},
                "who": {"identifier": {"value": destination}},
                "requestor": False,
            }
        )
    agents.append(
        {
            "type": {"coding": [{"system": PARTICIPATION, "code": "CST", "display": "custodian"}]},
            "who": {"display": "yigongti-fhir-adapter"},
            "requestor": False,
        }
    )
    return agents


def _requestor_role(body: dict[str, Any]) -> dict[str, str]:
    if body["actor"].startswith("source:"):
        return {"system": DCM, "code": "110153", "display": "Source Role ID"}
    if body["action"].startswith("fhir."):
        return {"system": PARTICIPATION, "code": "IRCP", "display": "information recipient"}
    return {"system": DCM, "code": "110150", "display": "Application"}


def _entities(body: dict[str, Any], detail: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if body.get("correlation"):
        found.append(
            {
                "what": {"identifier": {"value": body["correlation"]}},
                "type": {"system": BALP_ENTITY_TYPE, "code": "XrequestId"},
            }
        )
    for patient in body.get("patients") or ():
        found.append(
            {
                "what": {"reference": patient},
                "type": {"system": ENTITY_TYPE, "code": "1", "display": "Person"},
                "role": {"system": OBJECT_ROLE, "code": "1", "display": "Patient"},
            }
        )
    if body.get("message"):
        found.append(
            {
                "what": {
                    "identifier": {
                        "system": "urn:adapter:inbound-message",
                        "value": body["message"],
                    }
                },
                "type": {"system": ENTITY_TYPE, "code": "2", "display": "System Object"},
                "role": {"system": OBJECT_ROLE, "code": "20", "display": "Job"},
            }
        )
    for entity in body.get("entities") or ():
        found.append(
            {
                "what": {"reference": entity},
                "type": {"system": ENTITY_TYPE, "code": "2", "display": "System Object"},
                "role": {"system": OBJECT_ROLE, "code": "4", "display": "Domain Resource"},
            }
        )
    if body["action"] == "fhir.search":
        found.append(
            {
                "type": {"system": ENTITY_TYPE, "code": "2", "display": "System Object"},
                "role": {"system": OBJECT_ROLE, "code": "24", "display": "Query"},
                "description": f"{body.get('subject')}?{detail.get('params') or ''}",
            }
        )
    kept = {k: v for k, v in sorted(detail.items()) if v is not None}
    if kept and found:
        found[-1]["detail"] = [{"type": k, "valueString": str(v)} for k, v in kept.items()]
    elif kept:
        found.append(
            {
                "type": {"system": ENTITY_TYPE, "code": "2", "display": "System Object"},
                "detail": [{"type": k, "valueString": str(v)} for k, v in kept.items()],
            }
        )
    return found

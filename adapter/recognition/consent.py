"""A person's consent that a facility may be shown their results for 检查检验结果互认, as a
FHIR R4 ``Consent`` in the resource table (docs/decisions/0043-recognition-consent.md).

The rules let a facility see another facility's results of a person when it cares for the
person **or the person consented**. Care is the adapter's care relationships
(adapter/store/care.py, docs/routing.md); consent is recorded here, and counts for the
recognition operations only (``$recognisable``, ``$recognition-decision``,
``$recognition-viewed``), never for FHIR reads or deliveries.

A consent counts for facility F at moment T when it is ``active``, its scope is
``patient-privacy``, its ``policy`` is the adapter's recognition policy, its
``provision`` permits, names F as an actor (role IRCP, the information recipient) and
its ``provision.period`` holds T (start inclusive, end exclusive, read in the consortium's
zone when the text has none). A revocation stores a new version with status
``inactive``: from then on it counts no more, and the history keeps both.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from adapter import audit
from adapter.consortium import Consortium
from adapter.errors import GoneError, InvalidRequestError, NotFoundError
from adapter.fhir.dates import format_instant, parse_range, truncate_to_millis
from adapter.identity import person_of, records_of
from adapter.store import lock_resources, resource_state, save_resources
from adapter.store.models import Resource

# what the consent allows: being shown the person's results for mutual recognition
POLICY = "https://yigongti-fhir-adapter.github.io/fhir/policy/recognition"
SCOPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/consentscope"
CATEGORY = {"system": "http://loinc.org", "code": "59284-0", "display": "Patient Consent"}
PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
RESOURCE_TYPES = "http://hl7.org/fhir/resource-types"
UTC_ZONE = ZoneInfo("UTC")  # only for texts with a time and offset, which carry their own
_r = Resource.__table__


@dataclass(frozen=True, slots=True)
class ConsentInput:
    patient_id: str
    facility_id: str  # the facility allowed (the ordering facility asking)
    end: datetime  # exclusive; a consent without an end is not taken
    start: datetime | None = None  # None: when recorded
    by: str | None = None  # who took it (staff number 工号), for the audit record


def record_consent(
    session: Session,
    consortium: Consortium,
    given: ConsentInput,
    *,
    now: datetime,
    actor: str,
) -> tuple[dict[str, Any], bool]:
    """Store a new active Consent and its audit record; answers the body and True.

    A repeated request (a double click, a client's retry after a lost answer) stores
    nothing: when an active consent of this Patient record already allows the facility
    for the whole of [start, end), that one is answered with False. The Patient's row is
    locked first, so two such requests at once still make one Consent."""
    facility = consortium.facility(given.facility_id)
    if facility is None:
        raise InvalidRequestError(
            f"facility {given.facility_id[:64]!r} is not a facility of the consortium",
            location="facility",
        )
    row = resource_state(session, "Patient", given.patient_id)
    if row is None:
        raise NotFoundError(f"Patient/{given.patient_id} is not known", location="patient")
    if row.deleted:
        raise GoneError(f"Patient/{given.patient_id} was deleted", location="patient")
    start = truncate_to_millis(given.start or now)
    end = truncate_to_millis(given.end)
    if end <= start:
        raise InvalidRequestError("the consent ends before it starts", location="end")
    lock_resources(session, [("Patient", given.patient_id)], now=now)
    existing = _covering(session, given.patient_id, given.facility_id, start, end)
    if existing is not None:
        return existing, False
    consent_id = str(uuid.uuid4())
    body: dict[str, Any] = {
        "resourceType": "Consent",
        "id": consent_id,
        "status": "active",
        "scope": {
            "coding": [{"system": SCOPE_SYSTEM, "code": "patient-privacy", "display": "隐私同意"}]
        },
        "category": [{"coding": [CATEGORY]}],
        "patient": {"reference": f"Patient/{given.patient_id}"},
        "dateTime": format_instant(truncate_to_millis(now)),
        # who agreed: the person
        "performer": [{"reference": f"Patient/{given.patient_id}"}],
        # where it was recorded (the custodian): the facility it allows
        "organization": [_facility_reference(given.facility_id, facility.name)],
        "policy": [{"uri": POLICY}],
        "provision": {
            "type": "permit",
            "period": {"start": format_instant(start), "end": format_instant(end)},
            "actor": [
                {
                    "role": {
                        "coding": [
                            {
                                "system": PARTICIPATION,
                                "code": "IRCP",
                                "display": "information recipient",
                            }
                        ]
                    },
                    "reference": _facility_reference(given.facility_id, facility.name),
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
            "purpose": [{"system": ACT_REASON, "code": "TREAT", "display": "treatment"}],
            "class": [
                {"system": RESOURCE_TYPES, "code": "Observation"},
                {"system": RESOURCE_TYPES, "code": "DiagnosticReport"},
            ],
        },
    }
    saved = save_resources(
        session, [body], message_id=None, now=now, facility_id=given.facility_id
    )[0]
    _audit(session, "consent.recorded", saved.body, actor, now, given.facility_id, given.by)
    return saved.body, True


def _covering(
    session: Session, patient_id: str, facility_id: str, start: datetime, end: datetime
) -> dict[str, Any] | None:
    """An active recognition consent of this Patient record that already allows
    ``facility_id`` from ``start`` to ``end`` (instants, as the adapter writes them)."""
    rows = session.execute(
        select(_r.c.body).where(
            _r.c.resource_type == "Consent",
            _r.c.patient_key == f"Patient/{patient_id}",
            _r.c.deleted.is_(False),
        )
    )
    for row in rows:
        body = row.body
        period = (body.get("provision") or {}).get("period") or {}
        if not (isinstance(period.get("start"), str) and isinstance(period.get("end"), str)):
            continue
        if "T" not in period["start"] or "T" not in period["end"]:
            continue  # a date-only period is another system's: not compared here
        try:
            begins = parse_range(period["start"], UTC_ZONE)[0]
            ends = parse_range(period["end"], UTC_ZONE)[0]
        except ValueError:
            continue
        if begins <= start and end <= ends and permits(body, facility_id, start, UTC_ZONE):
            return body
    return None


def revoke_consent(
    session: Session,
    consent_id: str,
    *,
    now: datetime,
    actor: str,
    facility_id: str | None = None,
    by: str | None = None,
) -> tuple[dict[str, Any], bool]:
    """The person withdrew the consent: a new version, status ``inactive`` (a consent
    already inactive is answered as it is). ``facility_id``: the caller's facility, which
    must be the one the consent allows (else 404, as an unknown consent)."""
    locked = lock_resources(session, [("Consent", consent_id)], now=now)
    row = resource_state(session, "Consent", consent_id)
    if row is None or row.deleted:
        raise NotFoundError(f"Consent/{consent_id} is not known", location="id")
    body = dict(row.body)
    if facility_id is not None and facility_id not in allowed_facilities(body):
        raise NotFoundError(f"Consent/{consent_id} is not known", location="id")
    if body.get("status") != "active":
        return body, False
    body["status"] = "inactive"
    body.pop("meta", None)
    saved = save_resources(
        session, [body], message_id=None, now=now, facility_id=row.facility_id, locked=locked
    )[0]
    facility = next(iter(allowed_facilities(saved.body)), None)
    _audit(session, "consent.revoked", saved.body, actor, now, facility, by)
    return saved.body, True


def consented(
    session: Session, patient_id: str, facility_id: str, at: datetime, zone: ZoneInfo
) -> bool:
    """Whether the person behind ``patient_id`` (any of their records) has an active
    recognition consent for ``facility_id`` at ``at``."""
    keys = sorted(
        {f"Patient/{record}" for record in records_of(session, person_of(session, patient_id))}
    )
    rows = session.execute(
        select(_r.c.body).where(
            _r.c.resource_type == "Consent",
            _r.c.patient_key.in_(keys),
            _r.c.deleted.is_(False),
        )
    )
    return any(permits(row.body, facility_id, at, zone) for row in rows)


def permits(body: dict[str, Any], facility_id: str, at: datetime, zone: ZoneInfo) -> bool:
    """Whether one Consent lets ``facility_id`` be shown the results at ``at``."""
    if body.get("status") != "active":
        return False
    if "patient-privacy" not in _codes(body.get("scope")):
        return False
    if POLICY not in {p.get("uri") for p in body.get("policy") or [] if isinstance(p, dict)}:
        return False
    provision = body.get("provision") or {}
    if provision.get("type") != "permit" or facility_id not in allowed_facilities(body):
        return False
    period = provision.get("period") or {}
    end = period.get("end")
    try:
        if period.get("start") and at < parse_range(period["start"], zone)[0]:
            return False
        if not isinstance(end, str) or not end:
            return False
        # an end with a time is the instant it ends (what the adapter writes); a date alone
        # (another system's) includes that whole day, as FHIR reads Period.end
        bounds = parse_range(end, zone)
        if at >= (bounds[0] if "T" in end else bounds[1]):
            return False
    except ValueError:
        return False
    return True


def allowed_facilities(body: dict[str, Any]) -> set[str]:
    """The facility ids a Consent's provision names as information recipients."""
    found: set[str] = set()
    for actor in (body.get("provision") or {}).get("actor") or []:
        if not isinstance(actor, dict) or "IRCP" not in _codes(actor.get("role")):
            continue
        value = ((actor.get("reference") or {}).get("identifier") or {}).get("value")
        if isinstance(value, str):
            found.add(value)
    return found


def _facility_reference(facility_id: str, name: str) -> dict[str, Any]:
    # as the answers of $recognisable name an issuing facility (adapter/recognition/parameters.py)
    return {"identifier": {"value": facility_id}, "display": name}


def _codes(concept: Any) -> set[str]:
    if not isinstance(concept, dict):
        return set()
    return {c.get("code") for c in concept.get("coding") or [] if isinstance(c, dict)}


def _audit(
    session: Session,
    action: audit.AuditAction,
    body: dict[str, Any],
    actor: str,
    now: datetime,
    facility: str | None,
    by: str | None,
) -> None:
    version = body["meta"]["versionId"]
    audit.record(
        audit.AuditEvent(
            action=action,
            outcome="success",
            actor=actor,
            subject=f"Consent/{body['id']}",
            correlation_id=None,
            at=now,
            detail={
                "interaction": "create" if action == "consent.recorded" else "update",
                "allowed": facility,
                "by": by[:64] if by else None,
            },
            entities=(f"Consent/{body['id']}/_history/{version}",),
            patients=_patients([body.get("patient")]),
        ),
        session=session,
    )


def _patients(references: Iterable[Any]) -> tuple[str, ...]:
    return tuple(
        r["reference"]
        for r in references
        if isinstance(r, dict) and str(r.get("reference", "")).startswith("Patient/")
    )

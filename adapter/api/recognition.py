"""检查检验结果互认 over HTTP (docs/recognition.md, docs/decisions/0027-recognition.md).

* ``GET /fhir/Patient/{id}/$recognisable``: the person's stored results that can be
  recognised now, per item asked (or, with no item, every catalogue item the person has a
  result of: the encounter-start reminder), and why the others cannot; a ``Parameters``.
* ``POST /fhir/Patient/{id}/$recognisable`` (a ``Parameters`` body with the same names,
  plus ``context``, the order or encounter number, and ``trigger``): the same answer, as
  shown to a doctor, and logged as a reminder (an operation that changes state is POSTed).
* ``GET /fhir/$recognisable?patient-identifier=system|value``: the same for the person
  with that identifier (every Patient record carrying it).

Decisions and the monthly 互认率: adapter/api/recognition_decisions.py.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import APIRouter, Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from adapter.api.body import read_limited_body
from adapter.api.deps import SessionDep, SessionFactoryDep, SettingsDep
from adapter.api.disclosure import disclosed
from adapter.api.facility import check_named
from adapter.api.fhir_request import check_id, check_known, date_range_param, request_zone
from adapter.api.responses import FHIRResponse
from adapter.api.scope import care_scope
from adapter.consortium import Consortium
from adapter.errors import (
    GoneError,
    InputTooLargeError,
    InvalidRequestError,
    NotFoundError,
    UnsupportedError,
)
from adapter.fhir.search_query import parse_search
from adapter.oversize import Oversize
from adapter.recognition.catalogue import SETTINGS, Catalogue
from adapter.recognition.consent import consented
from adapter.recognition.parameters import parameters
from adapter.recognition.query import ItemAnswer, Question, ask, zone_of
from adapter.recognition.reminders import Shown, log_shown, log_viewed
from adapter.store import resource_state
from adapter.store.lengths import over_limit
from adapter.store.models import RecognitionReminder
from adapter.store.search import find
from adapter.store.visibility import is_visible

router = APIRouter(prefix="/fhir", tags=["FHIR operations"])

RECOGNISABLE_PARAMS = ("code", "local-code", "facility", "setting", "at")


def catalogue_of(request: Request) -> Catalogue:
    catalogue = getattr(request.app.state, "recognition", None)
    if catalogue is None:
        raise UnsupportedError(
            "recognition is not configured: no recognition catalogue "
            "(ADAPTER_RECOGNITION_CATALOGUE, or recognition.yaml beside the consortium file)"
        )
    return catalogue


def known_patient(session: SessionDep, patient_id: str) -> None:
    check_id(patient_id)
    row = resource_state(session, "Patient", patient_id)
    if row is None:
        raise NotFoundError(f"Patient/{patient_id} is not known", location="id")
    if row.deleted:
        raise GoneError(f"Patient/{patient_id} was deleted", location="id")


def known_facility(consortium: Consortium, facility_id: str, name: str = "facility") -> str:
    if consortium.facility(facility_id) is None:
        raise InvalidRequestError(
            f"{name}={facility_id[:64]!r} is not a facility of the consortium", location=name
        )
    return facility_id


def setting_param(setting: str) -> str:
    if setting not in SETTINGS:
        raise InvalidRequestError(
            f"setting={setting[:32]!r}: one of {', '.join(SETTINGS)}", location="setting"
        )
    return setting


def _list(values: list[str]) -> list[str]:
    """Repeated parameters and comma-separated lists alike (``code=A,B&code=C``)."""
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


@router.get(
    "/Patient/{patient_id}/$recognisable",
    name="fhir_recognisable",
    summary="Patient/$recognisable: prior results that mutual recognition (互认) accepts now",
)
def recognisable(patient_id: str, request: Request, session: SessionDep) -> FHIRResponse:
    catalogue = catalogue_of(request)
    check_care_or_consent(request, session, patient_id)  # a reader: its care, or consent
    known_patient(session, patient_id)
    check_known(request, request.query_params.keys(), RECOGNISABLE_PARAMS)
    return _answer(request, session, catalogue, [patient_id])


@router.get(
    "/$recognisable",
    name="fhir_recognisable_by_identifier",
    summary="$recognisable for the person with an identifier (居民身份证号, 就诊卡号 ...)",
)
def recognisable_by_identifier(request: Request, session: SessionDep) -> FHIRResponse:
    catalogue = catalogue_of(request)
    check_known(request, request.query_params.keys(), (*RECOGNISABLE_PARAMS, "patient-identifier"))
    identifier = request.query_params.get("patient-identifier")
    if not identifier or "|" not in identifier:
        raise InvalidRequestError(
            "patient-identifier=system|value is required", location="patient-identifier"
        )
    parsed = parse_search("Patient", [("identifier", identifier)])
    # every record with the identifier, then those of its care or its consent (a consent
    # counts here, unlike in FHIR searches: adapter/recognition/consent.py)
    page = find(session, ["Patient"], parsed.criteria, count=100)
    ids = [body["id"] for body in page.bodies if may_ask(request, session, body["id"])]
    if not ids:
        # the value is personal data (an ID number): never echoed
        system = identifier.partition("|")[0][:120]
        raise NotFoundError(
            f"no Patient has this identifier of system {system!r}", location="patient-identifier"
        )
    return _answer(request, session, catalogue, ids)


def _answer(
    request: Request, session: SessionDep, catalogue: Catalogue, patient_ids: list[str]
) -> FHIRResponse:
    query = request.query_params
    values = {name: query.getlist(name) for name in query}
    question = _question(request, values, patient_ids)
    answers = ask(session, catalogue, request.app.state.consortium, question)
    _disclosed(request, answers, patient_ids, values)
    return FHIRResponse(parameters(answers, catalogue, request.app.state.consortium))


def _disclosed(
    request: Request,
    answers: list[ItemAnswer],
    patient_ids: list[str],
    values: dict[str, list[str]],
) -> None:
    """The answer names a person's results (which tests, when, where): recorded in the
    audit log like a search (``fhir.search``, interaction ``operation:recognisable``), the
    results named as references, the parameters by name only (never their values)."""
    shown = [
        {"resourceType": kind, "id": rid}
        for answer in answers
        for candidate in answer.candidates
        for kind, rid in [candidate.reference.split("/", 1)]
    ]
    disclosed(
        request,
        "fhir.search",
        shown,
        interaction="operation:recognisable",
        resource_type="Patient",
        params=[(name, "") for name in values],
        patients=[f"Patient/{pid}" for pid in patient_ids],
    )


def _question(request: Request, values: dict[str, list[str]], patient_ids: list[str]) -> Question:
    """The question from the parameters (query or posted Parameters, as lists of text)."""
    consortium: Consortium = request.app.state.consortium
    facility = (values.get("facility") or [None])[0]
    if facility is not None:
        known_facility(consortium, facility)
    local_codes = _list(values.get("local-code", []))
    if local_codes and facility is None:
        raise InvalidRequestError(
            "local-code needs facility= (whose code it is)", location="local-code"
        )
    setting = setting_param((values.get("setting") or ["outpatient"])[0])
    at = datetime.now(UTC)
    if values.get("at"):
        at = date_range_param("at", values["at"][0], request_zone(request))[0]
    return Question(
        patient_id=patient_ids[0],
        other_records=patient_ids[1:],
        at=at,
        codes=_list(values.get("code", [])),
        local_codes=local_codes,
        facility_id=facility,
        setting=setting,
    )


_REMINDER = RecognitionReminder.__table__.c
SHOWN_PARAMS = (*RECOGNISABLE_PARAMS, "context", "trigger", "doctor", "department")


@router.post(
    "/Patient/{patient_id}/$recognisable",
    name="fhir_recognisable_shown",
    summary="Patient/$recognisable as shown to a doctor: the same answer, and the reminder "
    "logged (for the 互认率)",
)
async def recognisable_shown(
    patient_id: str, request: Request, factory: SessionFactoryDep, settings: SettingsDep
) -> FHIRResponse:
    catalogue = catalogue_of(request)
    body = await read_limited_body(request, limit=settings.max_message_bytes, keep=0)
    if isinstance(body, Oversize):
        raise InputTooLargeError(f"the body is over {settings.max_message_bytes} bytes")
    values = _posted(body, SHOWN_PARAMS)
    for required in ("facility", "context"):
        if not values.get(required):
            raise InvalidRequestError(f"parameter {required!r} is required", location=required)
    await run_in_threadpool(for_own_care, request, factory, patient_id, values["facility"][0])
    asked = values.get("code") or values.get("local-code")
    trigger = (values.get("trigger") or ["order" if asked else "encounter"])[0]
    if trigger not in ("order", "encounter"):
        raise InvalidRequestError(
            f"trigger {trigger[:32]!r}: one of order, encounter", location="trigger"
        )
    for name in ("context", "doctor", "department"):
        problem = over_limit(_REMINDER[name], (values.get(name) or [None])[0], name)
        if problem:
            raise InvalidRequestError(problem, location=name)
    question = _question(request, values, [patient_id])
    consortium: Consortium = request.app.state.consortium
    shown = Shown(
        patient_id=patient_id,
        context=values["context"][0],
        trigger=trigger,  # type: ignore[arg-type]  # checked above
        facility_id=values["facility"][0],
        doctor=(values.get("doctor") or [None])[0],
        department=(values.get("department") or [None])[0],
    )

    def answer_and_log() -> list[ItemAnswer]:
        with factory.begin() as session:
            known_patient(session, patient_id)
            answers = ask(session, catalogue, consortium, question)
            # shown at the moment asked about (now, unless the HIS gave the time)
            log_shown(session, catalogue, shown, answers, now=question.at)
            return answers

    answers = await run_in_threadpool(answer_and_log)
    await run_in_threadpool(_disclosed, request, answers, [patient_id], values)
    return FHIRResponse(parameters(answers, catalogue, consortium))


VIEWED_PARAMS = ("facility", "context", "item", "result", "doctor", "viewed-at")


@router.post(
    "/Patient/{patient_id}/$recognition-viewed",
    name="fhir_recognition_viewed",
    summary="A doctor opened a prior result a reminder showed (已查阅), for the statistics",
)
async def recognition_viewed(
    patient_id: str, request: Request, factory: SessionFactoryDep, settings: SettingsDep
) -> FHIRResponse:
    catalogue_of(request)
    body = await read_limited_body(request, limit=settings.max_message_bytes, keep=0)
    if isinstance(body, Oversize):
        raise InputTooLargeError(f"the body is over {settings.max_message_bytes} bytes")
    values = _posted(body, VIEWED_PARAMS)
    for required in ("facility", "context", "item", "result"):
        if not values.get(required):
            raise InvalidRequestError(f"parameter {required!r} is required", location=required)
    await run_in_threadpool(for_own_care, request, factory, patient_id, values["facility"][0])
    at = datetime.now(UTC)
    if values.get("viewed-at"):
        at = date_range_param("viewed-at", values["viewed-at"][0], request_zone(request))[0]

    def record() -> int:
        with factory.begin() as session:
            return log_viewed(
                session,
                patient_id,
                values["context"][0],
                values["item"][0],
                values["result"][0],
                at=at,
            )

    if not await run_in_threadpool(record):
        raise NotFoundError(
            "no reminder was shown for this patient, context and item: nothing to have viewed",
            location="item",
        )
    return FHIRResponse(
        {
            "resourceType": "OperationOutcome",
            "issue": [
                {
                    "severity": "information",
                    "code": "informational",
                    "diagnostics": "viewed: recorded (the first view of each reminder is kept)",
                }
            ],
        }
    )


def for_own_care(
    request: Request, factory: SessionFactoryDep, patient_id: str, facility: str
) -> None:
    """A reader acts for its own facility (403) about persons in its care or who consented
    (404)."""
    check_named(request, facility)
    with factory() as session:
        check_care_or_consent(request, session, patient_id)


def may_ask(request: Request, session: Session, patient_id: str) -> bool:
    """Whether the caller may ask about this Patient record: no authentication, or its
    facility cares for the person, or the person consented (for recognition only)."""
    scope = care_scope(request)
    if scope is None or is_visible(session, scope, "Patient", patient_id):
        return True
    zone = zone_of(request.app.state.consortium)
    return consented(session, patient_id, scope.facility, scope.at, zone)


def check_care_or_consent(request: Request, session: Session, patient_id: str) -> None:
    """404 (as an unknown Patient) unless ``may_ask``."""
    if not may_ask(request, session, patient_id):
        raise NotFoundError(f"Patient/{patient_id} is not known", location="id")


def _posted(body: bytes, known: tuple[str, ...]) -> dict[str, list[str]]:
    """A posted Parameters as {name: [text, ...]}; an unknown parameter is refused."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequestError(f"the body is not JSON: {exc}", code="structure") from None
    if not isinstance(data, dict) or data.get("resourceType") != "Parameters":
        raise InvalidRequestError("post a FHIR Parameters resource", code="structure")
    out: dict[str, list[str]] = {}
    for parameter in data.get("parameter") or []:
        name = parameter.get("name") if isinstance(parameter, dict) else None
        if name not in known:
            raise InvalidRequestError(
                f"parameter {str(name)[:40]!r} is not known here (known: {', '.join(known)})",
                location=str(name)[:40],
            )
        value = next((v for k, v in parameter.items() if k.startswith("value")), None)
        out.setdefault(name, []).append(posted_text(name, value))
    return out


def posted_text(name: str, value: Any) -> str:
    """One parameter's value as text: a string, a Coding's / Identifier's code or value, a
    Reference's reference."""
    if isinstance(value, dict):
        value = value.get("code") or value.get("value") or value.get("reference")
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequestError(f"parameter {name!r} has no usable value", location=name)
    return value.strip()

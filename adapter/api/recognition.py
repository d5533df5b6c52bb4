"""检查检验结果互认 over HTTP (docs/recognition.md, docs/decisions/0027-recognition.md).

* ``GET /fhir/Patient/{id}/$recognisable``: the person's stored results that can be
  recognised now, per item asked (or, with no item, every catalogue item the person has a
  result of: the encounter-start reminder), and why the others cannot; a ``Parameters``.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request

from adapter.api.deps import SessionDep
from adapter.api.fhir_request import check_id, check_known, date_range_param, request_zone
from adapter.api.responses import FHIRResponse
from adapter.consortium import Consortium
from adapter.errors import GoneError, InvalidRequestError, NotFoundError, UnsupportedError
from adapter.recognition.catalogue import SETTINGS, Catalogue
from adapter.recognition.parameters import parameters
from adapter.recognition.query import Question, ask
from adapter.store import resource_state

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
    known_patient(session, patient_id)
    query = request.query_params
    check_known(request, query.keys(), RECOGNISABLE_PARAMS)
    consortium: Consortium = request.app.state.consortium
    facility = query.get("facility")
    if facility is not None:
        known_facility(consortium, facility)
    local_codes = _list(query.getlist("local-code"))
    if local_codes and facility is None:
        raise InvalidRequestError(
            "local-code needs facility= (whose code it is)", location="local-code"
        )
    setting = query.get("setting", "outpatient")
    if setting not in SETTINGS:
        raise InvalidRequestError(
            f"setting={setting[:32]!r}: one of {', '.join(SETTINGS)}", location="setting"
        )
    at = datetime.now(UTC)
    if "at" in query:
        at = date_range_param("at", query["at"], request_zone(request))[0]
    question = Question(
        patient_id=patient_id,
        at=at,
        codes=_list(query.getlist("code")),
        local_codes=local_codes,
        facility_id=facility,
        setting=setting,
    )
    answers = ask(session, catalogue, consortium, question)
    return FHIRResponse(parameters(answers, catalogue, consortium))

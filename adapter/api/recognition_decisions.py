"""Doctors' recognition decisions and the monthly 互认率 over HTTP (docs/recognition.md).

* ``POST /fhir/Patient/{id}/$recognition-decision``: a doctor's decision on one item of a
  new order (a ``Parameters`` body), answered with the ``Task`` that records it: 201 when
  new, 200 when the same decision was recorded before or is revised.
* ``GET /recognition/rate?month=YYYY-MM``: the monthly 互认率 per facility and item (JSON).
"""

from __future__ import annotations

import io
from datetime import UTC, datetime
from decimal import Decimal

import orjson
from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response

from adapter.api.body import read_limited_body
from adapter.api.deps import SessionDep, SessionFactoryDep, SettingsDep
from adapter.api.facility import check_named, own_facility
from adapter.api.fhir_request import date_range_param, request_zone
from adapter.api.recognition import (
    catalogue_of,
    for_own_care,
    known_facility,
    known_patient,
    posted_text,
    setting_param,
)
from adapter.api.responses import FHIRResponse
from adapter.consortium import Consortium
from adapter.errors import InputTooLargeError, InvalidRequestError
from adapter.export import write_csv, write_xlsx
from adapter.oversize import Oversize
from adapter.recognition.corrections import changed_after_recognition
from adapter.recognition.decisions import DECISIONS, DecisionInput, record
from adapter.recognition.query import zone_of
from adapter.recognition.rate import monthly_rates, parse_by, prices_of, table, yuan

router = APIRouter(prefix="/fhir", tags=["FHIR operations"])
stats_router = APIRouter(tags=["Recognition"])


DECISION_PARAMS = {
    "order": ("valueString", "valueIdentifier", "valueReference"),
    "item": ("valueCode", "valueString", "valueCoding"),
    "facility": ("valueString", "valueCode", "valueId"),
    "doctor": ("valueString", "valueIdentifier"),
    "department": ("valueString",),
    "decision": ("valueCode", "valueString"),
    "reason": ("valueCode", "valueString", "valueCoding"),
    "reason-text": ("valueString",),
    "prior": ("valueReference", "valueString"),
    "decided-at": ("valueDateTime", "valueInstant"),
    "setting": ("valueCode", "valueString"),
}


def decision_parameters(body: bytes) -> dict[str, str]:
    """The posted Parameters as {name: text}; unknown or repeated parameters are refused."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequestError(f"the body is not JSON: {exc}", code="structure") from None
    if not isinstance(data, dict) or data.get("resourceType") != "Parameters":
        raise InvalidRequestError("post a FHIR Parameters resource", code="structure")
    out: dict[str, str] = {}
    for parameter in data.get("parameter") or []:
        name = parameter.get("name") if isinstance(parameter, dict) else None
        if name not in DECISION_PARAMS:
            known = ", ".join(DECISION_PARAMS)
            raise InvalidRequestError(
                f"parameter {str(name)[:40]!r} is not known here (known: {known})",
                location=str(name)[:40],
            )
        if name in out:
            raise InvalidRequestError(f"parameter {name!r} is given twice", location=name)
        value = next((parameter[k] for k in DECISION_PARAMS[name] if k in parameter), None)
        out[name] = posted_text(name, value)
    for required in ("order", "item", "facility", "doctor", "decision"):
        if required not in out:
            raise InvalidRequestError(f"parameter {required!r} is required", location=required)
    if out["decision"] not in DECISIONS:
        raise InvalidRequestError(
            f"decision {out['decision'][:32]!r}: one of {', '.join(DECISIONS)}",
            location="decision",
        )
    return out


@router.post(
    "/Patient/{patient_id}/$recognition-decision",
    name="fhir_recognition_decision",
    summary="Record a doctor's recognition decision (互认 / 不互认) as a Task",
)
async def recognition_decision(
    patient_id: str,
    request: Request,
    factory: SessionFactoryDep,
    settings: SettingsDep,
) -> FHIRResponse:
    catalogue = catalogue_of(request)
    body = await read_limited_body(request, limit=settings.max_message_bytes, keep=0)
    if isinstance(body, Oversize):
        raise InputTooLargeError(f"the body is over {settings.max_message_bytes} bytes")
    given = decision_parameters(body)
    decided_at = None
    if "decided-at" in given:
        decided_at = date_range_param("decided-at", given["decided-at"], request_zone(request))[0]
    decision = DecisionInput(
        patient_id=patient_id,
        order_id=given["order"],
        item_code=given["item"],
        facility_id=given["facility"],
        doctor=given["doctor"],
        decision=given["decision"],  # type: ignore[arg-type]  # checked above
        prior=given.get("prior"),
        reason_code=given.get("reason"),
        reason_text=given.get("reason-text"),
        department=given.get("department"),
        decided_at=decided_at,
        setting=setting_param(given.get("setting", "outpatient")),
    )
    consortium: Consortium = request.app.state.consortium
    await run_in_threadpool(for_own_care, request, factory, patient_id, decision.facility_id)

    def write():
        with factory.begin() as session:
            known_patient(session, patient_id)
            return record(session, catalogue, consortium, decision, now=datetime.now(UTC))

    recorded = await run_in_threadpool(write)
    task = recorded.task
    location = f"{str(request.base_url).rstrip('/')}/fhir/Task/{task['id']}"
    return FHIRResponse(
        task,
        status_code=201 if recorded.created else 200,
        headers={"Location": f"{location}/_history/{task['meta']['versionId']}"},
    )


XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@stats_router.get(
    "/recognition/rate",
    name="recognition_rate",
    summary="Monthly 互认率 per facility and item, or department / doctor "
    "(recognised / eligible), as JSON, CSV or XLSX",
)
def recognition_rate(request: Request, session: SessionDep) -> Response:
    catalogue = catalogue_of(request)
    query = request.query_params
    month = query.get("month")
    if not month:
        raise InvalidRequestError("month=YYYY-MM is required", location="month")
    consortium: Consortium = request.app.state.consortium
    facility = query.get("facility")
    if facility is not None:
        known_facility(consortium, facility)
    try:
        by = parse_by(query.get("by"))
    except ValueError as exc:
        raise InvalidRequestError(str(exc), location="by") from None
    shape = query.get("format", "json")
    if shape not in ("json", "csv", "xlsx"):
        raise InvalidRequestError("format: json, csv or xlsx", location="format")
    try:
        rates = monthly_rates(
            session,
            month,
            zone_of(consortium),
            facility_id=facility,
            by=by,
            prices=prices_of(catalogue.items),
        )
    except ValueError as exc:
        raise InvalidRequestError(str(exc), location="month") from None
    if shape != "json":
        headers, rows = table(rates, by)
        out = io.BytesIO()
        if shape == "csv":
            write_csv(out, headers, rows)
            media = "text/csv; charset=utf-8"
        else:
            write_xlsx(out, headers, rows, sheet_title=f"互认率 {month}")
            media = XLSX
        name = f"recognition-rate-{month}.{shape}"
        return Response(
            out.getvalue(),
            media_type=media,
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
    recognised = sum(r.recognised for r in rates)
    eligible = sum(r.eligible for r in rates)
    priced = [r.saved for r in rates if r.priced]
    return JSONResponse(
        {
            "month": month,
            "by": list(by),
            "shown": sum(r.shown for r in rates),
            "viewed": sum(r.viewed for r in rates),
            "eligible": eligible,
            "recognised": recognised,
            "rate": round(recognised / eligible, 4) if eligible else None,
            "tests_avoided": recognised,
            "cost_avoided": yuan(sum(priced, Decimal(0))) if priced else None,
            "items": [r.as_dict(by) for r in rates],
        }
    )


@stats_router.get(
    "/recognition/corrections",
    name="recognition_corrections",
    summary="Recognised results that their lab changed afterwards (corrected, cancelled ...)",
)
def recognition_corrections(request: Request, session: SessionDep) -> JSONResponse:
    """The caller's facility's decisions 互认 whose prior result was stored again after the
    decision (adapter/recognition/corrections.py); every facility's for the consortium."""
    catalogue_of(request)
    facility = own_facility(request)
    named = request.query_params.get("facility")
    if named is not None:
        known_facility(request.app.state.consortium, named)
        check_named(request, named)
        facility = named
    since = None
    if "since" in request.query_params:
        since = date_range_param("since", request.query_params["since"], request_zone(request))[0]
    found = changed_after_recognition(session, facility_id=facility, since=since)
    return JSONResponse(
        {
            "total": len(found),
            "withdrawn": sum(1 for c in found if c.withdrawn),
            "decisions": [c.as_dict() for c in found],
        }
    )

"""``GET /audit/disclosures``: the per-patient disclosure report (PIPL art. 28-29 requests:
who received or read this person's data, when, why), for the auditor.

    GET /audit/disclosures?patient=Patient/<id>[&since=ISO][&until=ISO][&all=true]
                          [&person=false][&_format=csv]

``patient`` names one Patient record; the report covers every record the patient index
links to the same person unless ``person=false``. ``all=true``: every audited event about
the person (receipts, attempts), not only disclosures. JSON by default (``{"patient",
"records", "entries": [...]}``); ``_format=csv`` for a spreadsheet (cells that a spreadsheet
would run as formulas are neutralised: adapter/export.py). The request is itself audited
(``audit.read``).
"""

from __future__ import annotations

import io
from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from adapter import audit
from adapter.api.deps import SessionDep
from adapter.audit.context import ANONYMOUS, current
from adapter.audit.disclosures import disclosures, patient_reference, person_references
from adapter.audit.writer import record_now
from adapter.errors import InvalidRequestError
from adapter.export import write_csv

router = APIRouter(tags=["Audit"])

COLUMNS = ("when", "action", "outcome", "to", "by", "facility", "address", "why", "what")


def _moment(params: dict[str, str], name: str) -> datetime | None:
    value = params.get(name)
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidRequestError(f"{name}: an ISO date or time", location=name) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _flag(params: dict[str, str], name: str, default: bool) -> bool:
    value = params.get(name)
    if value is None:
        return default
    if value not in ("true", "false"):
        raise InvalidRequestError(f"{name}: true or false", location=name)
    return value == "true"


@router.get(
    "/audit/disclosures",
    name="audit_disclosures",
    summary="Who received or read a person's data (disclosure report)",
)
def disclosure_report(request: Request, session: SessionDep) -> Response:
    params = dict(request.query_params)
    patient = params.get("patient", "").strip()
    if not patient or "/" in patient.removeprefix("Patient/"):
        raise InvalidRequestError("patient: Patient/<id> is required", location="patient")
    as_csv = params.get("_format") == "csv"
    records = (
        person_references(session, patient)
        if _flag(params, "person", True)
        else [patient_reference(patient)]
    )
    found = disclosures(
        session,
        records,
        since=_moment(params, "since"),
        until=_moment(params, "until"),
        every_action=_flag(params, "all", False),
    )
    caller = current()
    record_now(
        request.app.state.session_factory,
        audit.AuditEvent(
            action="audit.read",
            outcome="success",
            actor=caller.client if caller and caller.client else ANONYMOUS,
            subject=patient_reference(patient),
            correlation_id=None,
            at=datetime.now(UTC),
            detail={"report": "disclosures", "entries": len(found), "records": len(records)},
        ),
    )
    if not as_csv:
        return JSONResponse(
            {"patient": patient_reference(patient), "records": records, "entries": found}
        )
    out = io.BytesIO()
    write_csv(
        out,
        COLUMNS,
        ([*(entry.get(c) for c in COLUMNS[:-1]), _what(entry)] for entry in found),
    )
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="disclosures.csv"'},
    )


def _what(entry: dict) -> str:
    return " ".join(entry["resources"]) or f"{entry['results']} search results"

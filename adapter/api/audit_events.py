"""The audit log as FHIR ``AuditEvent`` (IHE BALP shapes: adapter/audit/resource.py).

GET  /fhir/AuditEvent?patient=&agent=&date=&type=&subtype=&outcome=&entity=&correlation-id=
GET  /fhir/AuditEvent/{id}
PUT, POST, PATCH, DELETE  -> 405: the log is append-only (and the attempt is recorded)

Reading the audit log is itself audited, once per request (``audit.read``), never once per
record returned, so reading it does not feed it endlessly. Registered before the generic
FHIR routes (adapter/api/app.py), which know nothing of AuditEvent.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request

from adapter import audit
from adapter.api import bundles
from adapter.api.deps import SessionDep, SettingsDep
from adapter.api.errors import outcome_response
from adapter.api.fhir import fhir_base
from adapter.api.responses import FHIRResponse
from adapter.audit.context import ANONYMOUS, current
from adapter.audit.resource import audit_event
from adapter.audit.search import search_records
from adapter.audit.writer import record_now
from adapter.errors import InvalidRequestError, Issue, NotFoundError
from adapter.fhir.search_query import paging_number
from adapter.store.audit_log import AuditRecord

router = APIRouter(prefix="/fhir", tags=["Audit"])


def _audit_read(request: Request, outcome: str = "success", **detail: str | int | None) -> None:
    caller = current()
    record_now(
        request.app.state.session_factory,
        audit.AuditEvent(
            action="audit.read",
            outcome=outcome,  # type: ignore[arg-type]
            actor=caller.client if caller and caller.client else ANONYMOUS,
            subject="AuditEvent",
            correlation_id=None,
            at=datetime.now(UTC),
            detail=detail,
        ),
    )


def _number(params: dict[str, str], name: str, default: int) -> int:
    if name not in params:
        return default
    number = paging_number(params[name])
    if number is None:
        raise InvalidRequestError(f"{name}: a whole number", location=name)
    return number


@router.get("/AuditEvent", name="audit_search", summary="Search the audit log")
def search(request: Request, session: SessionDep, settings: SettingsDep) -> FHIRResponse:
    params = list(request.query_params.multi_items())
    single = dict(params)
    count = min(_number(single, "_count", settings.page_size_default), settings.page_size_max)
    offset = _number(single, "_offset", 0)
    total, page = search_records(session, params, count=count, offset=offset)
    _audit_read(
        request,
        interaction="search-type",
        params=",".join(sorted({k for k, _ in params}))[:500] or None,
        results=len(page),
    )
    return FHIRResponse(
        bundles.searchset(
            base=fhir_base(request),
            resource_type="AuditEvent",
            total=total,
            bodies=[audit_event(r.seq, r.body) for r in page],
            params=params,
            count=count,
            offset=offset,
        )
    )


@router.get("/AuditEvent/{event_id}", name="audit_read", summary="Read one audit record")
def read(event_id: str, request: Request, session: SessionDep) -> FHIRResponse:
    seq = paging_number(event_id)
    record = session.get(AuditRecord, seq) if seq is not None else None
    if record is None:
        raise NotFoundError(f"AuditEvent/{event_id[:40]} is not known", location="id")
    _audit_read(request, interaction="read", seq=record.seq)
    return FHIRResponse(audit_event(record.seq, record.body))


def _refuse(request: Request) -> FHIRResponse:
    caller = current()
    record_now(
        request.app.state.session_factory,
        audit.AuditEvent(
            action="audit.refused",
            outcome="failure",
            actor=caller.client if caller and caller.client else ANONYMOUS,
            subject="AuditEvent",
            correlation_id=None,
            at=datetime.now(UTC),
            detail={"method": request.method, "path": request.url.path[:200]},
        ),
    )
    return outcome_response(
        405,
        [
            Issue(
                "error",
                "not-supported",
                "the audit log is append-only: AuditEvent cannot be created, changed or "
                "deleted through the API",
            )
        ],
        headers={"Allow": "GET"},
    )


for path in ("/AuditEvent", "/AuditEvent/{event_id}"):
    router.add_api_route(
        path, _refuse, methods=["PUT", "POST", "PATCH", "DELETE"], include_in_schema=False
    )

"""审计 Audit (the auditor role only, 三员分立): search the audit log (who, what, when,
outcome, about which patient), verify its hash chain and signed checkpoints, and a
patient's disclosure report. The same functions as ``GET /fhir/AuditEvent``, ``adapter
audit verify`` and ``adapter audit disclosures``; reading the log is itself recorded
(``audit.read``), a verification too (``audit.verified``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from adapter import audit
from adapter.api.deps import SessionDep
from adapter.audit.disclosures import disclosures
from adapter.audit.search import search_records
from adapter.audit.verify import verify
from adapter.audit.writer import record_now
from adapter.console.access import current_session
from adapter.console.pages.messages import parse_day
from adapter.console.render import page
from adapter.errors import InvalidRequestError

router = APIRouter(include_in_schema=False)
PAGE_SIZE = 50
OUTCOMES = {"success": "0", "warning": "4", "failure": "8"}


def _record(request: Request, action: audit.AuditAction, outcome: str, **detail: Any) -> None:
    record_now(
        request.app.state.session_factory,
        audit.AuditEvent(
            action=action,
            outcome=outcome,  # type: ignore[arg-type]
            actor=current_session(request).client,
            subject="AuditEvent",
            correlation_id=None,
            at=datetime.now(UTC),
            detail={"via": "console", **detail},
        ),
    )


@router.get("/console/audit", name="console_audit", response_class=HTMLResponse)
def console_audit(
    request: Request,
    session: SessionDep,
    agent: str = "",
    action: str = "",
    outcome: str = "",
    patient: str = "",
    since: str = "",
    until: str = "",
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> HTMLResponse:
    params: list[tuple[str, str]] = []
    if agent.strip():
        params.append(("agent", agent.strip()))
    if action.strip():
        params.append(("subtype", action.strip()))
    if outcome in OUTCOMES:
        params.append(("outcome", OUTCOMES[outcome]))
    if patient.strip():
        params.append(("patient", patient.strip()))
    start, end = parse_day(since), parse_day(until)
    if start:
        params.append(("date", f"ge{start.isoformat()}"))
    if end:
        params.append(("date", f"lt{(end + timedelta(days=1)).isoformat()}"))
    error = None
    try:
        total, found = search_records(session, params, count=PAGE_SIZE, offset=offset)
    except InvalidRequestError as exc:
        total, found, error = 0, [], exc.message
    _record(
        request,
        "audit.read",
        "success",
        interaction="search-type",
        params=",".join(sorted({k for k, _ in params})) or None,
        results=len(found),
    )
    rows = []
    for record in found:
        body = orjson.loads(record.body)
        rows.append(
            {
                "seq": record.seq,
                "recorded": record.recorded,
                "action": record.action,
                "outcome": record.outcome,
                "actor": record.actor,
                "client": record.client,
                "facility": record.facility,
                "subject": body.get("subject"),
                "detail": body.get("detail") or {},
            }
        )
    filters = {
        "agent": agent,
        "action": action,
        "outcome": outcome,
        "patient": patient,
        "since": since,
        "until": until,
    }
    query = {k: v for k, v in filters.items() if v}
    return page(
        request,
        "audit.html",
        active="audit",
        rows=rows,
        total=total,
        error=error,
        filters=filters,
        outcomes=tuple(OUTCOMES),
        offset=offset,
        page_size=PAGE_SIZE,
        previous=urlencode({**query, "offset": max(0, offset - PAGE_SIZE)}),
        next=urlencode({**query, "offset": offset + PAGE_SIZE}),
    )


@router.post("/console/audit/verify", name="console_audit_verify", response_class=HTMLResponse)
async def console_audit_verify(request: Request) -> HTMLResponse:
    """Walk the whole chain (as ``adapter audit verify`` does, without archives)."""
    settings = request.app.state.settings
    path = settings.audit_public_key or settings.audit_signing_key
    public = None
    if path is not None:
        from adapter.audit.signing import load_public

        public = load_public(path)

    def walk() -> Any:
        with request.app.state.session_factory() as session:
            return verify(session, public=public)

    report = await run_in_threadpool(walk)
    await run_in_threadpool(
        _record,
        request,
        "audit.verified",
        "success" if report.ok else "failure",
        records=report.records,
        first_problem=str(report.findings[0].seq) if report.findings else None,
    )
    return page(
        request, "audit_verify.html", active="audit", report=report, keyed=public is not None
    )


@router.get("/console/audit/disclosures", name="console_disclosures", response_class=HTMLResponse)
def console_disclosures(request: Request, session: SessionDep, patient: str = "") -> HTMLResponse:
    found = disclosures(session, patient.strip()) if patient.strip() else []
    if patient.strip():
        _record(request, "audit.read", "success", interaction="disclosures", results=len(found))
    return page(request, "disclosures.html", active="audit", patient=patient.strip(), found=found)

"""消息 Messages: search, one message (its content with the located issues marked in
place, the resources it produced, the unread content), reprocess one or many.

The same store and pipeline functions as ``GET /messages`` and ``POST .../reprocess`` (and
``adapter messages``), with the same limits: a facility's client sees its facility's
messages only; the content is shown to operators only (the admin runs the adapter but
reads no clinical data), masked (adapter/console/masking.py).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from adapter.api.deps import SessionDep
from adapter.api.facility import check_owned, own_facility
from adapter.api.ingest import original_content_type
from adapter.console.access import current_session
from adapter.console.masking import masked_patient
from adapter.console.render import SECURITY_HEADERS, page
from adapter.console.source_view import build
from adapter.errors import AdapterError, AlteredBytesError, NotFoundError
from adapter.mapping.translation import UNREAD
from adapter.pipeline import STATUSES
from adapter.store import get_message, verified_raw
from adapter.store.id_forms import key_of_text_id
from adapter.store.index_keys import equals
from adapter.store.index_params import rows_of
from adapter.store.models import InboundMessage, Resource, SearchIndex

router = APIRouter(include_in_schema=False)
PAGE_SIZE = 50
MAX_BATCH = 500  # messages reprocessed by one request


def _zone(request: Request) -> ZoneInfo:
    return ZoneInfo(request.app.state.consortium.timezone or "Asia/Shanghai")


def _day_start(day: date | None, zone: ZoneInfo) -> datetime | None:
    return datetime.combine(day, time(0), zone) if day else None


def _sources(request: Request) -> list[str]:
    facility = own_facility(request)
    return [
        s.id
        for f in request.app.state.consortium.facilities
        if facility is None or f.id == facility
        for s in f.sources
    ]


def _patient_messages(session: Session, identifier: str) -> Any:
    """Message ids whose resources are about a patient with this identifier value."""
    si = SearchIndex.__table__
    patients = select(si.c.resource_key).where(
        rows_of(si, "Patient", ("identifier",), "token"),
        equals(si.c.code, si.c.code_full, identifier),
    )
    patient = Resource.__table__.alias("patient")
    keys = select(key_of_text_id(patient.c.id)).where(  # as stored (decision 0123)
        patient.c.resource_type == "Patient", patient.c.resource_key.in_(patients)
    )
    r = Resource.__table__.c
    return select(r.message_id).where(
        r.message_id.is_not(None),
        ((r.resource_type == "Patient") & r.resource_key.in_(patients)) | r.patient_key.in_(keys),
    )


def search(
    request: Request,
    session: Session,
    *,
    source: str | None,
    status: str | None,
    since: date | None,
    until: date | None,
    message_id: str | None,
    patient: str | None,
    offset: int,
) -> tuple[int, list[InboundMessage]]:
    m = InboundMessage
    where = []
    facility = own_facility(request)
    if facility is not None:
        where.append(m.facility_id == facility)
    if source:
        where.append(m.source_system == source)
    if status:
        where.append(m.status == status)
    zone = _zone(request)
    if since:
        where.append(m.received_at >= _day_start(since, zone))
    if until:
        where.append(m.received_at < _day_start(until + timedelta(days=1), zone))
    if message_id:
        where.append(m.id.startswith(message_id.strip().lower(), autoescape=True))
    if patient:
        where.append(m.id.in_(_patient_messages(session, patient.strip())))
    total = session.scalar(select(func.count()).select_from(m).where(*where)) or 0
    rows = session.scalars(
        select(m).where(*where).order_by(m.received_at.desc(), m.id).limit(PAGE_SIZE).offset(offset)
    )
    return int(total), list(rows)


def patients_of(session: Session, message_ids: list[str]) -> dict[str, str]:
    """The masked patient of each message (its Patient resource), for the listing."""
    if not message_ids:
        return {}
    found = session.execute(patients_of_statement(message_ids))
    return {mid: masked_patient(body) for mid, body in found}


def patients_of_statement(message_ids: list[str]) -> Select[tuple[str, Any]]:
    """Led by the message index: ``resource_type || ''`` keeps SQLite (no statistics) off
    the type index, which read every Patient of the store for each page of the listing."""
    return select(Resource.message_id, Resource.body).where(
        Resource.message_id.in_(message_ids), Resource.resource_type.concat("") == "Patient"
    )


@router.get("/console/messages", name="console_messages", response_class=HTMLResponse)
def console_messages(
    request: Request,
    session: SessionDep,
    source: str | None = None,
    status: str | None = None,
    since: str | None = None,
    until: str | None = None,
    id: str | None = None,
    patient: str | None = None,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> HTMLResponse:
    status = status if status in STATUSES else None
    since_day, until_day = parse_day(since), parse_day(until)
    total, rows = search(
        request,
        session,
        source=source or None,
        status=status,
        since=since_day,
        until=until_day,
        message_id=id or None,
        patient=patient or None,
        offset=offset,
    )
    filters = {
        "source": source or "",
        "status": status or "",
        "since": since_day.isoformat() if since_day else "",
        "until": until_day.isoformat() if until_day else "",
        "id": id or "",
        "patient": patient or "",
    }
    query = {k: v for k, v in filters.items() if v}
    return page(
        request,
        "messages.html",
        active="messages",
        total=total,
        rows=rows,
        patients=patients_of(session, [r.id for r in rows]),
        filters=filters,
        sources=_sources(request),
        statuses=STATUSES,
        offset=offset,
        page_size=PAGE_SIZE,
        previous=urlencode({**query, "offset": max(0, offset - PAGE_SIZE)}),
        next=urlencode({**query, "offset": offset + PAGE_SIZE}),
        zone=_zone(request),
    )


def parse_day(value: str | None) -> date | None:
    """A form's date field: empty or not a date is no filter."""
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


def _owned(request: Request, session: Session, message_id: str) -> InboundMessage:
    found = get_message(session, message_id)
    if found is None:
        raise NotFoundError(f"no message {message_id}", location="message_id")
    check_owned(request, found.facility_id, f"message {message_id}")
    return found


@router.get("/console/messages/{message_id}", name="console_message", response_class=HTMLResponse)
def console_message(
    message_id: str,
    request: Request,
    session: SessionDep,
    result: str | None = None,
    before: str | None = None,
) -> Response:
    try:
        found = _owned(request, session, message_id)
    except NotFoundError:
        return page(request, "not_found.html", status=404, active="messages", what=message_id)
    issues = list(found.issues or [])
    view, altered = None, False
    may_read = "operator" in current_session(request).roles
    if may_read:
        try:
            view = build(verified_raw(found), found.detected_format, found.encoding, issues)
        except AlteredBytesError:
            altered = True
    unread = [i for i in issues if str(i.get("diagnostics", "")).endswith(UNREAD)]
    return page(
        request,
        "message.html",
        active="messages",
        message=found,
        issues=issues,
        unread=unread,
        view=view,
        altered=altered,
        may_read=may_read,
        resources=list(found.resources or []),
        result=result if result in (*STATUSES, "refused") else None,
        before=before if before in STATUSES else None,
        zone=_zone(request),
    )


@router.get("/console/messages/{message_id}/raw", name="console_message_raw")
def console_message_raw(message_id: str, request: Request, session: SessionDep) -> Response:
    """The exact bytes, as a download (never rendered), like ``GET /messages/{id}/raw``."""
    found = _owned(request, session, message_id)
    headers = {
        **SECURITY_HEADERS,
        "Content-Disposition": f'attachment; filename="message-{found.id}.bin"',
        "Content-Security-Policy": "default-src 'none'; sandbox",
    }
    original = original_content_type(found.content_type)
    if original:
        headers["X-Original-Content-Type"] = original
    return Response(verified_raw(found), media_type="application/octet-stream", headers=headers)


@router.post("/console/messages/{message_id}/reprocess", name="console_reprocess")
async def console_reprocess(message_id: str, request: Request) -> Response:
    factory = request.app.state.session_factory
    with factory() as session:
        found = _owned(request, session, message_id)
        before = found.status
    try:
        result = await run_in_threadpool(request.app.state.pipeline.reprocess, message_id)
        after = result.status
    except AdapterError:
        after = "refused"
    target = f"/console/messages/{message_id}?" + urlencode({"result": after, "before": before})
    return RedirectResponse(target, status_code=303, headers=SECURITY_HEADERS)


@router.post(
    "/console/messages/reprocess", name="console_reprocess_many", response_class=HTMLResponse
)
async def console_reprocess_many(
    request: Request,
    ids: Annotated[list[str] | None, Form()] = None,
    status: Annotated[str | None, Form()] = None,
) -> HTMLResponse:
    """The ticked messages, or every message of a status (of the caller's facility)."""
    factory = request.app.state.session_factory
    facility = own_facility(request)
    with factory() as session:
        query = select(InboundMessage.id, InboundMessage.status, InboundMessage.facility_id)
        if ids:
            query = query.where(InboundMessage.id.in_(ids[:MAX_BATCH]))
        elif status in STATUSES:
            query = query.where(InboundMessage.status == status).limit(MAX_BATCH)
        else:
            query = query.where(InboundMessage.id.in_([]))
        if facility is not None:
            query = query.where(InboundMessage.facility_id == facility)
        chosen = [
            (mid, st) for mid, st, _ in session.execute(query.order_by(InboundMessage.received_at))
        ]
    results: list[dict[str, Any]] = []
    for mid, before in chosen:
        try:
            outcome = await run_in_threadpool(request.app.state.pipeline.reprocess, mid)
            results.append({"id": mid, "before": before, "after": outcome.status})
        except AdapterError as exc:  # one refused message does not stop the others
            results.append({"id": mid, "before": before, "after": "refused", "error": exc.message})
    return page(request, "reprocessed.html", active="messages", results=results)

"""Receiving documents (``POST /ingest``) and reading what became of them (``/messages``)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse, Response

from adapter.api.body import read_limited_body
from adapter.api.deps import SessionDep, SessionFactoryDep
from adapter.api.facility import check_owned, own_facility
from adapter.errors import (
    AdapterError,
    InvalidRequestError,
    Issue,
    NotFoundError,
    operation_outcome,
)
from adapter.fhir.search_query import MAX_PAGING_NUMBER
from adapter.oversize import Oversize
from adapter.pipeline import QUARANTINED, RECEIVED, STATUSES, IngestResult, Pipeline
from adapter.pipeline.group import Arrival
from adapter.pipeline.receipt import Channel, Receipt, address
from adapter.store import count_messages, get_message, list_messages, verified_raw
from adapter.store.models import InboundMessage

router = APIRouter(tags=["ingest"])


# a plain ``def`` (FastAPI runs it in its thread pool): the ``async`` form, tried, made
# tests/live/test_slow_clients.py fail 3 times in 14 (decision 0052)
def get_pipeline(request: Request) -> Pipeline:
    return request.app.state.pipeline


PipelineDep = Annotated[Pipeline, Depends(get_pipeline)]


def _answer(result: IngestResult, max_status: int = 422) -> Response:
    location = f"/messages/{result.message_id}"
    headers = {"Location": location, "X-Message-Id": result.message_id}
    # received: kept, the final status is read at Location once the drain stored it
    if result.accepted or result.status == RECEIVED:
        return JSONResponse(result.as_dict(), status_code=202, headers=headers)
    # quarantined: an OperationOutcome that locates every problem and says where the
    # message is kept
    issues = [
        *result.issues,
        Issue(
            "information",
            "informational",
            f"the message is kept as {result.message_id}, status {result.status}; fix the mapping "
            f"or the sender and reprocess it (POST {location}/reprocess)",
        ),
    ]
    status = max_status
    if any(i.code == "too-long" for i in result.issues):
        status = 413
    return Response(
        content=_json(operation_outcome(issues)),
        status_code=status,
        media_type="application/fhir+json; charset=utf-8",
        headers=headers,
    )


def _json(content: Any) -> bytes:
    import orjson

    return orjson.dumps(content)


def _optional_header(name: str, title: str, description: str | None = None) -> dict[str, Any]:
    """An optional string header in OpenAPI, as FastAPI describes a ``Header()`` parameter."""
    schema: dict[str, Any] = {"anyOf": [{"type": "string"}, {"type": "null"}], "title": title}
    described = {"description": description} if description else {}
    return {"name": name, "in": "header", "required": False, "schema": {**schema, **described}}


_PREFER = "respond-async: answer once the bytes are kept (202 received)"
# the headers are read from the request, not as ``Header()`` parameters (FastAPI's
# validation of each cost the event loop more than the rest of the route's own work), and
# documented as FastAPI documented them (decision 0129)
_INGEST_HEADERS = {
    "parameters": [
        _optional_header("x-source-system", "X-Source-System"),
        {**_optional_header("prefer", "Prefer", _PREFER), "description": _PREFER},
    ]
}


@router.post("/ingest", status_code=202, openapi_extra=_INGEST_HEADERS)
async def ingest(request: Request) -> Response:
    """Receive one document as raw bytes; the source system is named in ``X-Source-System``.
    Answered once stored, or on receipt (``Prefer: respond-async``, or the source's
    ``answer: on-receipt``): then 202 with status ``received``, the final status at
    ``Location`` once the drain stored it (docs/ingest-api.md)."""
    headers = request.headers
    x_source_system = headers.get("x-source-system")
    prefer = headers.get("prefer")
    # read here, not by ``PipelineDep``: that plain ``def`` dependency costs every request a
    # trip to the thread pool and back before its body is read (decision 0129)
    pipeline: Pipeline = request.app.state.pipeline
    if not x_source_system:
        raise InvalidRequestError(
            "the X-Source-System header names the sending system",
            code="required",
            location="X-Source-System",
        )
    asked = prefers_async(prefer)
    if asked or _answers_on_receipt(pipeline, x_source_system):
        answer = await _receive(request, pipeline, x_source_system, None)
        if asked:
            answer.headers["Preference-Applied"] = "respond-async"
        return answer
    # announced now: a group being stored waits for it (briefly) rather than leave it out
    arrival = pipeline.group_commit.arrive()
    try:
        return await _receive(request, pipeline, x_source_system, arrival)
    finally:
        arrival.close()


def prefers_async(prefer: str | None) -> bool:
    """``Prefer: respond-async`` (RFC 7240; FHIR's asynchronous pattern) among the
    header's preferences."""
    if not prefer:
        return False
    return any(p.split(";", 1)[0].strip().lower() == "respond-async" for p in prefer.split(","))


def _answers_on_receipt(pipeline: Pipeline, source_id: str) -> bool:
    found = pipeline.consortium.source(source_id)  # unknown: refused later, as always
    return found is not None and found[1].answer == "on-receipt"


async def _receive(
    request: Request, pipeline: Pipeline, x_source_system: str, arrival: Arrival | None
) -> Response:
    """``arrival``: the group commit's announcement (answered when stored); None: answered
    on receipt."""
    client = request.client
    receipt = Receipt(
        x_source_system,
        Channel.HTTP,
        # the connection's peer: behind a reverse proxy, the proxy (headers are not trusted)
        peer=address(client.host, client.port) if client else None,
        content_type=request.headers.get("content-type"),
    )
    try:
        body = await read_limited_body(request, limit=pipeline.max_bytes, keep=pipeline.keep_bytes)
    except ClientDisconnect:  # the sender went away (or was timed out): nothing to answer
        return Response(status_code=400)
    if isinstance(body, Oversize):
        if arrival is not None:
            arrival.close()  # refused apart, never queued
        result = await run_in_threadpool(pipeline.refuse_oversize, body, receipt)
        answer = _answer(result)
        # the rest of the body is not read: the connection cannot carry another request
        answer.headers["Connection"] = "close"
        return answer
    if arrival is None:  # kept as received, with what else arrives meanwhile (on_receipt.py)
        result = await run_in_threadpool(pipeline.receive, body, receipt)
        return _answer(result)
    # stored with what else arrives meanwhile, answered once committed (group.py)
    result = await run_in_threadpool(pipeline.group_commit.ingest, body, receipt, arrival)
    return _answer(result)


def message_summary(message: InboundMessage) -> dict[str, Any]:
    return {
        "message_id": message.id,
        "source_system": message.source_system,
        "facility_id": message.facility_id,
        "received_at": message.received_at.isoformat(),
        "channel": message.channel,
        "peer": message.peer,
        "processed_at": message.processed_at.isoformat() if message.processed_at else None,
        "status": message.status,
        "format": message.detected_format,
        "encoding": message.encoding,
        "content_type": message.content_type,
        "size": message.size,
        "sha256": message.sha256,
        "attempts": message.attempts,
        "resource_count": len(message.resources or []),
        "issue_count": len(message.issues or []),
    }


@router.get("/messages")
def messages(
    request: Request,
    session: SessionDep,
    status: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_PAGING_NUMBER)] = 0,
) -> JSONResponse:
    """Received messages, newest first, optionally only those with one status."""
    if status is not None and status not in STATUSES:
        raise InvalidRequestError(f"status must be one of {', '.join(STATUSES)}", location="status")
    facility = own_facility(request)
    found = list_messages(session, status, limit, offset, facility=facility)
    total = count_messages(session, status, facility=facility)
    items = [message_summary(m) for m in found]
    return JSONResponse({"total": total, "limit": limit, "offset": offset, "items": items})


@router.get("/messages/{message_id}")
def message(message_id: str, request: Request, session: SessionDep) -> JSONResponse:
    """One message: status, located issues and the resources it produced."""
    found = get_message(session, message_id)
    if found is None:
        raise NotFoundError(f"no message {message_id}", location="message_id")
    check_owned(request, found.facility_id, f"message {message_id}")
    return JSONResponse(
        {**message_summary(found), "issues": found.issues or [], "resources": found.resources or []}
    )


# file name extensions of downloads, by detected format; anything else is .bin
_EXTENSIONS = {"hl7v2": "hl7", "xml": "xml", "cda": "xml", "json": "json", "csv": "csv"}
# what may stand in a header value echoing the sender's Content-Type
_UNSAFE_HEADER_CHARS = re.compile(r"[^A-Za-z0-9!#$%&'*+\-.^_`|~/;=, ]")


def original_content_type(declared: str | None) -> str | None:
    """The sender's Content-Type reduced to header-safe ASCII (at most 200 characters)."""
    if not declared:
        return None
    return _UNSAFE_HEADER_CHARS.sub("", declared)[:200].strip() or None


@router.get("/messages/{message_id}/raw")
def message_raw(message_id: str, request: Request, session: SessionDep) -> Response:
    """The exact bytes received, as a download (never rendered: the sender chose the type)."""
    found = get_message(session, message_id)
    if found is None:
        raise NotFoundError(f"no message {message_id}", location="message_id")
    check_owned(request, found.facility_id, f"message {message_id}")
    extension = _EXTENSIONS.get(found.detected_format or "", "bin")
    headers = {
        # the id is a uuid4 of our own: nothing in the file name comes from the sender
        "Content-Disposition": f'attachment; filename="message-{found.id}.{extension}"',
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
    }
    original = original_content_type(found.content_type)
    if original:
        headers["X-Original-Content-Type"] = original
    return Response(
        content=verified_raw(found), media_type="application/octet-stream", headers=headers
    )


@router.post("/messages/{message_id}/reprocess")
async def reprocess(
    message_id: str, request: Request, pipeline: PipelineDep, factory: SessionFactoryDep
) -> Response:
    """Translate a stored message again with the current mappings (after a fix)."""
    if own_facility(request) is not None:
        with factory() as session:
            found = get_message(session, message_id)
            facility_id = found.facility_id if found is not None else None
        check_owned(request, facility_id, f"message {message_id}")
    result = await run_in_threadpool(pipeline.reprocess, message_id)
    return _answer(result)


@router.post("/messages/reprocess")
async def reprocess_by_status(
    request: Request, pipeline: PipelineDep, session: SessionDep, status: str = QUARANTINED
) -> JSONResponse:
    """Reprocess every message with a status (default: quarantined)."""
    if status not in STATUSES:
        raise InvalidRequestError(f"status must be one of {', '.join(STATUSES)}", location="status")
    facility = own_facility(request)
    ids = [m.id for m in list_messages(session, status, limit=100_000, facility=facility)]
    results: list[dict[str, Any]] = []
    for message_id in ids:
        try:
            result = await run_in_threadpool(pipeline.reprocess, message_id)
        except AdapterError as exc:  # one refused message does not stop the others
            results.append({"message_id": message_id, "status": "refused", "error": exc.message})
            continue
        results.append({"message_id": message_id, "status": result.status})
    return JSONResponse({"reprocessed": len(results), "items": results})

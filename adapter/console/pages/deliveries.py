"""投递 Deliveries: per destination pending / in flight / delivered / dead with the
breaker and the operator's pause; the deliveries (filtered), one with every attempt and
the destination's answers; replay one, a filter (a destination's dead or delivered rows
since a time) or a destination's dead letters, each after a confirmation; pause / resume.

The same outbox functions as ``/deliveries`` (and ``adapter delivery``); replays and
pauses are in the audit log (``delivery.replayed``, ``delivery.paused`` / ``.resumed``).
"""

from __future__ import annotations

from datetime import UTC, datetime, time
from typing import Annotated, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from adapter import audit
from adapter.api.deps import SessionDep
from adapter.api.facility import check_owned, destination_facility, destinations_of
from adapter.audit.events import AuditEvent
from adapter.console.access import current_session
from adapter.console.render import SECURITY_HEADERS, page
from adapter.errors import AdapterError, NotFoundError
from adapter.store import outbox
from adapter.store.models import OUTBOX_STATES

router = APIRouter(include_in_schema=False)
PAGE_SIZE = 50


def _zone(request: Request) -> ZoneInfo:
    return ZoneInfo(request.app.state.consortium.timezone or "Asia/Shanghai")


def _visible(request: Request) -> list[str]:
    names = [d.id for _, d in request.app.state.consortium.destinations()]
    among = destinations_of(request)
    return names if among is None else [n for n in names if n in among]


def destination_table(request: Request, session: Session) -> list[dict[str, Any]]:
    names = _visible(request)
    counts = outbox.state_counts(session, names)
    records = {r.destination: r for r in outbox.destination_records(session)}
    enabled = {d.id: d.enabled for _, d in request.app.state.consortium.destinations()}
    out = []
    for name in names:
        record = records.get(name)
        out.append(
            {
                "destination": name,
                "enabled": enabled.get(name, True),
                **{state: counts[name].get(state, 0) for state in OUTBOX_STATES},
                # delivered rows deleted by the outbox retention (decision 0064)
                "pruned": record.pruned_total if record else 0,
                "breaker": record.breaker_state if record else "closed",
                "paused_at": record.paused_at if record else None,
                "paused_by": record.paused_by if record else None,
                "last_error": record.last_error if record else None,
            }
        )
    return out


@router.get("/console/deliveries", name="console_deliveries", response_class=HTMLResponse)
def console_deliveries(
    request: Request,
    session: SessionDep,
    destination: str | None = None,
    state: str | None = None,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    done: str | None = None,
    count: int | None = None,
) -> HTMLResponse:
    names = _visible(request)
    state = state if state in OUTBOX_STATES else None
    destination = destination if destination in names else None
    total, rows = outbox.list_deliveries(
        session,
        state=state,
        destination=destination,
        limit=PAGE_SIZE,
        offset=offset,
        among=names,
    )
    query = {k: v for k, v in {"destination": destination, "state": state}.items() if v}
    return page(
        request,
        "deliveries.html",
        active="deliveries",
        destinations=destination_table(request, session),
        names=names,
        states=OUTBOX_STATES,
        filters={"destination": destination or "", "state": state or ""},
        total=total,
        rows=rows,
        offset=offset,
        page_size=PAGE_SIZE,
        previous=urlencode({**query, "offset": max(0, offset - PAGE_SIZE)}),
        next=urlencode({**query, "offset": offset + PAGE_SIZE}),
        done=done if done in ("replayed", "paused", "resumed") else None,
        count=count,
        zone=_zone(request),
    )


@router.get(
    "/console/deliveries/{delivery_id}", name="console_delivery", response_class=HTMLResponse
)
def console_delivery(
    delivery_id: int, request: Request, session: SessionDep, done: str | None = None
) -> HTMLResponse:
    row = outbox.find_delivery(session, delivery_id)
    if row is None or not _mine(request, row.destination):
        return page(request, "not_found.html", status=404, active="deliveries", what=delivery_id)
    return page(
        request,
        "delivery.html",
        active="deliveries",
        row=row,
        attempts=outbox.attempts_of(session, delivery_id),
        done=done == "replayed",
        zone=_zone(request),
    )


def _mine(request: Request, destination: str) -> bool:
    try:
        check_owned(request, destination_facility(request, destination), "such delivery")
    except NotFoundError:
        return False
    return True


def _actor(request: Request) -> str:
    return current_session(request).client


def _back(path: str, **query: Any) -> Response:
    target = path + ("?" + urlencode({k: v for k, v in query.items() if v is not None}))
    return RedirectResponse(target, status_code=303, headers=SECURITY_HEADERS)


@router.post("/console/deliveries/{delivery_id}/replay", name="console_replay")
def console_replay(delivery_id: int, request: Request) -> Response:
    factory = request.app.state.session_factory
    with factory() as session:
        found = outbox.find_delivery(session, delivery_id)
    if found is None or not _mine(request, found.destination):
        return page(request, "not_found.html", status=404, active="deliveries", what=delivery_id)
    now = datetime.now(UTC)
    try:
        with factory.begin() as session:
            row = outbox.replay_one(session, delivery_id, now=now)
            audit.record(
                audit.replay_event(
                    actor=_actor(request),
                    at=now,
                    destination=row.destination,
                    count=1,
                    delivery_id=row.id,
                    entity=f"{row.resource_type}/{row.resource_id}",
                    message_id=row.message_id,
                    via="console",
                ),
                session=session,
            )
    except AdapterError as exc:
        return page(
            request, "failed.html", status=exc.http_status, active="deliveries", error=exc.message
        )
    return _back(f"/console/deliveries/{delivery_id}", done="replayed")


@router.post("/console/deliveries/replay", name="console_replay_many")
def console_replay_many(
    request: Request,
    destination: Annotated[str, Form()],
    state: Annotated[str, Form()] = "dead",
    since: Annotated[str | None, Form()] = None,
) -> Response:
    """A destination's dead letters (or delivered rows), since a day when given."""
    if destination not in _visible(request):
        return page(request, "not_found.html", status=404, active="deliveries", what=destination)
    start = datetime.combine(since, time(0), _zone(request)).astimezone(UTC) if since else None
    now = datetime.now(UTC)
    factory = request.app.state.session_factory
    try:
        with factory.begin() as session:
            count = outbox.replay_many(
                session, destination=destination, since=start, state=state, now=now
            )
            audit.record(
                audit.replay_event(
                    actor=_actor(request),
                    at=now,
                    destination=destination,
                    count=count,
                    state=state,
                    via="console",
                ),
                session=session,
            )
    except AdapterError as exc:
        return page(
            request, "failed.html", status=exc.http_status, active="deliveries", error=exc.message
        )
    return _back("/console/deliveries", destination=destination, done="replayed", count=count)


@router.post("/console/destinations/{destination}/pause", name="console_pause")
def console_pause(
    destination: str, request: Request, action: Annotated[str, Form()] = "pause"
) -> Response:
    """Pause (nothing is sent; rows wait without using tries) or resume a destination."""
    if destination not in _visible(request) or action not in ("pause", "resume"):
        return page(request, "not_found.html", status=404, active="deliveries", what=destination)
    now = datetime.now(UTC)
    paused = action == "pause"
    factory = request.app.state.session_factory
    with factory.begin() as session:
        outbox.set_paused(session, destination, paused=paused, by=_actor(request), now=now)
        audit.record(
            AuditEvent(
                action="delivery.paused" if paused else "delivery.resumed",
                outcome="success",
                actor=_actor(request),
                subject=None,
                correlation_id=None,
                at=now,
                detail={"destination": destination, "via": "console"},
            ),
            session=session,
        )
    return _back("/console/deliveries", done="paused" if paused else "resumed")

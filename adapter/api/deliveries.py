"""Deliveries (outbox rows): list, show with every attempt, replay.

GET  /deliveries?state=dead&destination=X     newest first, paged
GET  /deliveries/{id}                         one, with its attempts
POST /deliveries/{id}/replay                  send it again (its current version)
POST /deliveries/replay?destination=X&since=T every dead letter of X (since T) again
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import JSONResponse

from adapter import audit
from adapter.api.deps import SessionDep, SessionFactoryDep  # SessionDep reads only
from adapter.api.facility import (
    check_named,
    check_owned,
    destination_facility,
    destinations_of,
)
from adapter.audit.context import acting_client
from adapter.errors import InvalidRequestError
from adapter.fhir.search_query import MAX_PAGING_NUMBER
from adapter.store import outbox

router = APIRouter(tags=["deliveries"])


@router.get("/deliveries")
def deliveries(
    request: Request,
    session: SessionDep,
    state: str | None = None,
    destination: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_PAGING_NUMBER)] = 0,
) -> JSONResponse:
    """Outbox rows, newest first, optionally of one state and one destination."""
    total, rows = outbox.list_deliveries(
        session,
        state=state,
        destination=destination,
        limit=limit,
        offset=offset,
        among=destinations_of(request),
    )
    return JSONResponse(
        {
            "total": total,
            "limit": limit,
            "offset": offset,
            "items": [r.summary() for r in rows],
        }
    )


@router.get("/deliveries/{delivery_id}")
def delivery(delivery_id: int, request: Request, session: SessionDep) -> JSONResponse:
    """One delivery and every attempt: time, status, error, duration, worker."""
    row = outbox.get_delivery(session, delivery_id)
    check_owned(request, destination_facility(request, row.destination), "such delivery")
    return JSONResponse(
        {
            **row.summary(),
            "attempt_log": [a.summary() for a in outbox.attempts_of(session, delivery_id)],
        }
    )


@router.post("/deliveries/replay")
def replay_destination(
    request: Request,
    factory: SessionFactoryDep,
    destination: str,
    since: datetime | None = None,
    state: str = "dead",
) -> JSONResponse:
    """Queue every dead letter of a destination again (whose last attempt was at or after
    ``since``); ``state=delivered`` sends delivered ones again (after a restore there)."""
    if since is not None and since.tzinfo is None:
        raise InvalidRequestError(
            "since needs a zone offset, e.g. 2026-03-01T08:00:00+08:00", location="since"
        )
    owner = destination_facility(request, destination)
    if owner is not None:
        check_named(request, owner)
    now = datetime.now(UTC)
    with factory.begin() as session:
        count = outbox.replay_many(
            session, destination=destination, since=since, state=state, now=now
        )
        audit.record(
            audit.replay_event(
                actor=acting_client(), at=now, destination=destination, count=count, state=state
            ),
            session=session,
        )
    return JSONResponse({"destination": destination, "replayed": count})


@router.post("/deliveries/{delivery_id}/replay")
def replay(delivery_id: int, request: Request, factory: SessionFactoryDep) -> JSONResponse:
    """Queue one dead (or delivered) delivery again; 409 while it is still queued."""
    with factory() as session:
        found = outbox.get_delivery(session, delivery_id)
    check_owned(request, destination_facility(request, found.destination), "such delivery")
    now = datetime.now(UTC)
    with factory.begin() as session:
        row = outbox.replay_one(session, delivery_id, now=now)
        audit.record(_replayed_one(row, acting_client(), now), session=session)
        body = row.summary()
    return JSONResponse(body)


def _replayed_one(row: outbox.OutboxRow, actor: str, now: datetime) -> audit.AuditEvent:
    return audit.replay_event(
        actor=actor,
        at=now,
        destination=row.destination,
        count=1,
        delivery_id=row.id,
        entity=f"{row.resource_type}/{row.resource_id}",
        message_id=row.message_id,
    )

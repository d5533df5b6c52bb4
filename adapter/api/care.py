"""Care relationships: which facility cares for which person, and why (docs/routing.md).

GET  /care?person=P&facility=F&open=true   relationships, newest first
GET  /care/CareTeam?person=P                the person's open relationships as a FHIR CareTeam
POST /care/grants          {person, facility, by, why, until?}   an explicit grant
POST /care/revocations     {person, facility, by, why}           an explicit revocation
POST /care/registrations   {person, facility, by?, why?}         the registered primary facility
POST /care/referrals/close {referral, at?}                       a referral's loop closed

``person`` is a Patient id: the consortium person it belongs to is looked up
(adapter.identity.person_of), so every record of a person finds the same relationships
(adapter.identity.keys_of: the person's records, and persons merged into it). Grants,
revocations and registrations are kept under the person.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field
from starlette.responses import JSONResponse

from adapter.api.deps import SessionDep, SessionFactoryDep
from adapter.api.facility import check_named, own_facility
from adapter.api.responses import FHIRResponse
from adapter.consortium import Consortium
from adapter.errors import InvalidRequestError, NotFoundError
from adapter.identity import keys_of, person_of
from adapter.store import care

router = APIRouter(tags=["care"])


class Grant(BaseModel):
    person: str = Field(min_length=1, max_length=64)
    facility: str = Field(min_length=1, max_length=64)
    by: str = Field(min_length=1, max_length=128, description="who grants (user, role)")
    why: str = Field(min_length=1, max_length=2000)
    until: datetime | None = None


class Revocation(BaseModel):
    person: str = Field(min_length=1, max_length=64)
    facility: str = Field(min_length=1, max_length=64)
    by: str = Field(min_length=1, max_length=128)
    why: str = Field(min_length=1, max_length=2000)


class Registration(BaseModel):
    person: str = Field(min_length=1, max_length=64)
    facility: str = Field(min_length=1, max_length=64)
    by: str | None = Field(None, max_length=128)
    why: str | None = Field(None, max_length=2000)


class Closure(BaseModel):
    referral: str = Field(pattern=r"^ServiceRequest/[A-Za-z0-9\-\.]{1,64}$")
    at: datetime | None = None


def _consortium(request: Request) -> Consortium:
    return request.app.state.consortium


def _facility(consortium: Consortium, facility: str, location: str = "facility") -> str:
    if consortium.facility(facility) is None:
        known = ", ".join(f.id for f in consortium.facilities)
        raise InvalidRequestError(
            f"unknown facility {facility!r}; one of: {known}", location=location
        )
    return facility


def with_zone(value: datetime | None, location: str) -> datetime | None:
    """A request body's instant: it must carry its zone offset (400 otherwise)."""
    if value is not None and value.tzinfo is None:
        raise InvalidRequestError(
            f"{location} needs a zone offset, e.g. 2026-03-01T08:00:00+08:00", location=location
        )
    return value


@router.get("/care")
def list_care(
    request: Request,
    session: SessionDep,
    person: str | None = None,
    facility: str | None = None,
    open_only: Annotated[bool, Query(alias="open")] = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> JSONResponse:
    """Care relationships of a person and/or a facility, newest first."""
    if person is None and facility is None:
        raise InvalidRequestError("give person or facility (or both)", location="person")
    if facility is not None:
        _facility(_consortium(request), facility)
        check_named(request, facility)
    facility = facility or own_facility(request)  # a facility's operator sees its own care
    persons = None
    if person is not None:
        persons = keys_of(session, person)
    rows = care.list_care(
        session,
        persons=persons,
        facility=facility,
        open_at=datetime.now(UTC) if open_only else None,
        limit=limit,
    )
    return JSONResponse({"total": len(rows), "items": [r.summary() for r in rows]})


@router.get("/care/CareTeam", response_class=FHIRResponse)
def care_team(request: Request, session: SessionDep, person: str) -> FHIRResponse:
    """The facilities caring for the person now, as a FHIR R4 CareTeam (one participant per
    facility; ``role.text`` says why, ``period`` since when and until when)."""
    consortium = _consortium(request)
    found = person_of(session, person)
    now = datetime.now(UTC)
    caring = care.caring(session, keys_of(session, person), now)
    own = own_facility(request)
    if own is not None and own not in caring:  # who cares for others' patients is not said
        raise NotFoundError(f"person {person} is not in the care of {own}", location="person")
    return FHIRResponse(as_care_team(consortium, found, caring))


def as_care_team(
    consortium: Consortium, person: str, caring: dict[str, list[care.CareRow]]
) -> dict[str, Any]:
    participants = []
    for facility_id in sorted(caring):
        rows = caring[facility_id]
        facility = consortium.facility(facility_id)
        member: dict[str, Any] = {"display": facility.name if facility else facility_id}
        if facility is not None and facility.identifiers:
            first = facility.identifiers[0]
            member["identifier"] = {"system": first.system, "value": first.value}
        ends = [r.end_at for r in rows]
        period: dict[str, str] = {"start": min(r.start_at for r in rows).isoformat()}
        if all(e is not None for e in ends):
            period["end"] = max(e for e in ends if e is not None).isoformat()
        participants.append(
            {
                "role": [{"text": ", ".join(sorted({r.source for r in rows}))}],
                "member": member,
                "period": period,
            }
        )
    return {
        "resourceType": "CareTeam",
        "id": f"care-{person}",
        "status": "active",
        "name": "Facilities caring for this person (consortium routing by care)",
        "subject": {"reference": f"Patient/{person}"},
        "participant": participants,
    }


@router.post("/care/grants", status_code=201)
def grant(body: Grant, request: Request, factory: SessionFactoryDep) -> JSONResponse:
    """An explicit grant: the facility cares for the person (until ``until``, or a
    revocation), whatever else says."""
    _facility(_consortium(request), body.facility)
    check_named(request, body.facility)
    now = datetime.now(UTC)
    until = with_zone(body.until, "until")
    with factory.begin() as session:
        row = care.grant(
            session,
            person_of(session, body.person),
            body.facility,
            at=now,
            until=until,
            actor=body.by,
            note=body.why,
        )
    return JSONResponse(row.summary(), status_code=201)


@router.post("/care/revocations", status_code=201)
def revoke(body: Revocation, request: Request, factory: SessionFactoryDep) -> JSONResponse:
    """An explicit revocation: the facility no longer receives the person's resources, and
    what is queued for it is withdrawn at the next worker pass."""
    _facility(_consortium(request), body.facility)
    check_named(request, body.facility)
    with factory.begin() as session:
        row = care.revoke(
            session,
            person_of(session, body.person),
            body.facility,
            at=datetime.now(UTC),
            actor=body.by,
            note=body.why,
        )
    return JSONResponse(row.summary(), status_code=201)


@router.post("/care/registrations", status_code=201)
def register(body: Registration, request: Request, factory: SessionFactoryDep) -> JSONResponse:
    """The person's registered primary facility (签约 / 健康档案) from now on."""
    _facility(_consortium(request), body.facility)
    check_named(request, body.facility)
    with factory.begin() as session:
        person = person_of(session, body.person)
        care.register(
            session,
            person,
            body.facility,
            also=keys_of(session, person),
            at=datetime.now(UTC),
            detail="API",
            actor=body.by,
            note=body.why,
        )
        rows = care.list_care(session, persons={person}, facility=body.facility, limit=50)
    row = next(r for r in rows if r.source == "registered")
    return JSONResponse(row.summary(), status_code=201)


@router.post("/care/referrals/close")
def close_referral(body: Closure, request: Request, factory: SessionFactoryDep) -> JSONResponse:
    """The referral's loop closed (at ``at``, default now): its parties' relationships end
    ``care.windows.referral_after_close_days`` later."""
    at = with_zone(body.at, "at") or datetime.now(UTC)
    days = _consortium(request).care.windows.referral_after_close_days
    with factory.begin() as session:
        count = care.close_referral(
            session, body.referral, at=at, end=at + timedelta(days=days), detail="closed (API)"
        )
    return JSONResponse({"referral": body.referral, "closed": count})

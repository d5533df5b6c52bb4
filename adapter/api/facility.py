"""What a "facility" rule (adapter/auth/rules.py) lets a caller see: the handlers of
messages, deliveries and care ask here. With authentication off, or a client of
``scope: consortium``, every facility; else only the client's own. Another facility's
message or delivery answers 404 (its existence is not said); naming another facility in a
request answers 403."""

from __future__ import annotations

from fastapi import Request

from adapter.api.authz import deny, principal_of
from adapter.errors import NotFoundError


def own_facility(request: Request) -> str | None:
    """The facility the caller is limited to; None: every facility."""
    principal = principal_of(request)
    if principal is None or principal.consortium_scope:
        return None
    return principal.facility


def destinations_of(request: Request) -> list[str] | None:
    """The destinations the caller's deliveries are limited to (its facility's); None: all."""
    facility = own_facility(request)
    if facility is None:
        return None
    found = request.app.state.consortium.facility(facility)
    return [d.id for d in found.destinations] if found else []


def check_owned(request: Request, facility_id: str | None, what: str) -> None:
    """404 unless the thing (a message, a delivery) is of the caller's facility."""
    facility = own_facility(request)
    if facility is not None and facility_id != facility:
        raise NotFoundError(f"no {what}", location="id")


def check_named(request: Request, facility_id: str) -> None:
    """403 when a request names a facility other than the caller's."""
    facility = own_facility(request)
    principal = principal_of(request)
    if facility is not None and principal is not None and facility_id != facility:
        deny(request, principal, f"client {principal.client} acts for {facility} only")


def destination_facility(request: Request, destination: str) -> str | None:
    for facility, dest in request.app.state.consortium.destinations():
        if dest.id == destination:
            return facility.id
    return None

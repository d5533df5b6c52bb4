"""The "care" limit of FHIR reads (adapter/auth/rules.py): a reader sees the resources of
persons in its facility's care, its facility's records about no person and the directory
(adapter/store/visibility.py). A resource outside answers 404, as an unknown one does:
whether another facility's patient exists is not said. With authentication off: no limit.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import Request
from sqlalchemy.orm import Session

from adapter.api.authz import principal_of
from adapter.errors import NotFoundError
from adapter.store.visibility import Visibility, is_visible


def care_scope(request: Request) -> Visibility | None:
    principal = principal_of(request)
    if principal is None:
        return None
    return Visibility(principal.facility, datetime.now(UTC))


def check_visible(
    request: Request, session: Session, resource_type: str, resource_id: str
) -> Visibility | None:
    """404 unless the caller may read the resource; answers the caller's scope."""
    scope = care_scope(request)
    if scope is not None and not is_visible(session, scope, resource_type, resource_id):
        raise NotFoundError(f"{resource_type}/{resource_id} is not known", location="id")
    return scope

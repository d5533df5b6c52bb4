"""History: of one resource, of a type and of the whole server (FHIR R4 http.html#history).

Each takes ``_since`` (versions written at or after an instant), ``_at`` (versions current
at some moment of a date's range), ``_count`` and ``_offset`` (the paging links), newest
first. This router is included before the read and search routes: ``/fhir/_history`` and
``/fhir/{type}/_history`` would otherwise be taken for a search and a read.
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from adapter.api import bundles
from adapter.api.deps import SessionDep, SettingsDep
from adapter.api.disclosure import disclosed
from adapter.api.fhir import fhir_base
from adapter.api.fhir_request import check_id, check_type, paged_query
from adapter.api.responses import FHIRResponse
from adapter.api.scope import care_scope, check_visible
from adapter.errors import NotFoundError
from adapter.store.history import HistoryQuery, read_history_page

router = APIRouter(prefix="/fhir", tags=["FHIR"])

HISTORY_PARAMS = ("_since", "_at", "_count", "_offset")


@router.get("/_history", name="fhir_history_system", summary="History of every resource")
def history_system(request: Request, session: SessionDep, settings: SettingsDep) -> FHIRResponse:
    return _history(request, session, settings, None, None)


@router.get(
    "/{resource_type}/_history", name="fhir_history_type", summary="History of a resource type"
)
def history_type(
    resource_type: str, request: Request, session: SessionDep, settings: SettingsDep
) -> FHIRResponse:
    check_type(resource_type)
    return _history(request, session, settings, resource_type, None)


@router.get(
    "/{resource_type}/{resource_id}/_history",
    name="fhir_history",
    summary="History of one resource",
)
def history_instance(
    resource_type: str,
    resource_id: str,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
) -> FHIRResponse:
    check_type(resource_type)
    check_id(resource_id)
    return _history(request, session, settings, resource_type, resource_id)


def _history(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    resource_type: str | None,
    resource_id: str | None,
) -> FHIRResponse:
    asked = paged_query(
        request,
        HISTORY_PARAMS,
        page_default=settings.page_size_default,
        page_max=settings.page_size_max,
    )
    count, offset = asked.count, asked.offset
    query = HistoryQuery(
        resource_type, resource_id, asked.start("_since"), asked.range("_at"), count, offset
    )
    scope = care_scope(request)
    if resource_id is not None and resource_type is not None:
        check_visible(request, session, resource_type, resource_id)
    total, versions = read_history_page(session, query, scope=scope)
    if resource_id is not None and total == 0 and not _ever_existed(session, query):
        raise NotFoundError(f"{resource_type}/{resource_id} is not known", location="id")
    disclosed(
        request,
        "fhir.read",
        [v.body for v in versions if not v.deleted],
        interaction="history-system"
        if resource_type is None
        else "history-type"
        if resource_id is None
        else "history-instance",
        resource_type=resource_type or "*",
        params=asked.applied,
        session=session,
    )
    path = "/".join(p for p in (resource_type, resource_id, "_history") if p)
    return FHIRResponse(
        bundles.history(
            base=fhir_base(request),
            path=path,
            params=asked.applied,
            total=total,
            versions=versions,
            count=count,
            offset=offset,
        )
    )


def _ever_existed(session: SessionDep, query: HistoryQuery) -> bool:
    """A known resource with no version in the window answers an empty Bundle, not 404."""
    if query.since is None and query.at is None:
        return False
    unfiltered = HistoryQuery(query.resource_type, query.resource_id, count=0)
    return read_history_page(session, unfiltered)[0] > 0

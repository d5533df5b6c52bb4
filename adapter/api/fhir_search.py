"""FHIR search over HTTP: type-level (GET and POST ``_search``) and system-level
(``GET /fhir?_type=...``). Parsing is adapter/fhir/search_query.py, running the query
adapter/store/search.py, the Bundle adapter/api/search_bundle.py."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, Request
from sqlalchemy.orm import Session

from adapter.api.deps import SessionDep, SettingsDep
from adapter.api.disclosure import disclosed
from adapter.api.fhir import fhir_base
from adapter.api.fhir_request import check_type, prefers_lenient, request_zone
from adapter.api.responses import FHIRResponse
from adapter.api.scope import care_scope
from adapter.api.search_bundle import searchset
from adapter.errors import Issue
from adapter.fhir.search_params import SUPPORTED_TYPES
from adapter.fhir.search_query import parse_search
from adapter.fhir.subset import subset
from adapter.settings import Settings
from adapter.store.search import find
from adapter.store.search_include import MAX_INCLUDED, included

router = APIRouter(prefix="/fhir", tags=["FHIR"])


async def _form_params(request: Request) -> list[tuple[str, str]]:
    """The application/x-www-form-urlencoded body of a POST search."""
    body = (await request.body()).decode("utf-8", errors="replace")
    return parse_qsl(body, keep_blank_values=True)


FormParams = Annotated[list[tuple[str, str]], Depends(_form_params)]


@router.get("", name="fhir_search_system", summary="Search across types (_type)")
def search_system(request: Request, session: SessionDep, settings: SettingsDep) -> FHIRResponse:
    return run(request, session, settings, None, list(request.query_params.multi_items()))


@router.get("/{resource_type}", name="fhir_search", summary="Search (GET)")
def search_get(
    resource_type: str, request: Request, session: SessionDep, settings: SettingsDep
) -> FHIRResponse:
    check_type(resource_type)
    return run(request, session, settings, resource_type, list(request.query_params.multi_items()))


@router.post("/{resource_type}/_search", name="fhir_search_post", summary="Search (POST)")
def search_post(
    resource_type: str,
    request: Request,
    form: FormParams,
    session: SessionDep,
    settings: SettingsDep,
) -> FHIRResponse:
    check_type(resource_type)
    params = list(request.query_params.multi_items()) + form
    return run(request, session, settings, resource_type, params)


def run(
    request: Request,
    session: Session,
    settings: Settings,
    resource_type: str | None,
    params: list[tuple[str, str]],
) -> FHIRResponse:
    parsed = parse_search(
        resource_type, params, zone=request_zone(request), lenient=prefers_lenient(request)
    )
    count = settings.page_size_default if parsed.count is None else parsed.count
    count = 0 if parsed.summary_count else min(count, settings.page_size_max)
    types = (resource_type,) if resource_type else (parsed.types or SUPPORTED_TYPES)
    scope = care_scope(request)  # a reader's facility's care (adapter/api/scope.py)
    page = find(
        session,
        types,
        parsed.criteria,
        count=count,
        offset=parsed.offset,
        sort=parsed.sort,
        total="accurate" if parsed.summary_count else parsed.total,
        scope=scope,
    )
    warnings = [
        Issue(
            "warning",
            "not-supported",
            f"Search parameter '{name}' is not supported for {resource_type or 'every type'} "
            "and was ignored",
            location=name,
        )
        for name in parsed.ignored
    ]
    extra, cut = (
        included(session, page.bodies, parsed.includes, scope=scope)
        if parsed.includes
        else ([], False)
    )
    if cut:
        warnings.append(
            Issue(
                "warning",
                "too-costly",
                f"Only the first {MAX_INCLUDED} included resources are returned; "
                "ask for a smaller _count",
                location="_include",
            )
        )
    ignored = set(parsed.ignored)
    disclosed(
        request,
        "fhir.search",
        [*page.bodies, *extra],
        interaction="search-type" if resource_type else "search-system",
        resource_type=resource_type or "*",
        params=params,
        total=page.total,
        session=session,
    )
    return FHIRResponse(
        searchset(
            base=fhir_base(request),
            path=resource_type or "",
            total=page.total,
            matches=[subset(b, parsed.summary, parsed.elements) for b in page.bodies],
            included=[subset(b, parsed.summary, parsed.elements) for b in extra],
            params=[(k, v) for k, v in params if k not in ignored],
            count=count,
            offset=parsed.offset,
            has_more=page.has_more,
            warnings=warnings,
        )
    )

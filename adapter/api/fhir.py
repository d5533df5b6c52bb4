"""The FHIR read API under /fhir: metadata, read, vread (search: fhir_search.py; history:
history.py; operations: operations.py)."""

from __future__ import annotations

from datetime import datetime
from email.utils import format_datetime
from typing import Any

from fastapi import APIRouter, Request

from adapter import __version__
from adapter.api.deps import SessionDep
from adapter.api.disclosure import disclosed
from adapter.api.fhir_request import check_id as _check_id
from adapter.api.fhir_request import check_type, current, subset_params
from adapter.api.responses import FHIRResponse
from adapter.api.scope import check_visible
from adapter.errors import NotFoundError
from adapter.fhir.capability import capability_statement
from adapter.fhir.search_query import paging_number
from adapter.fhir.subset import subset
from adapter.settings import Settings
from adapter.store import read_version

__all__ = ["fhir_base", "router"]

router = APIRouter(prefix="/fhir", tags=["FHIR"])


def fhir_base(request: Request) -> str:
    """Absolute base of the FHIR API for links and fullUrls: ``Settings.base_url`` when it
    was configured (behind a reverse proxy), else the base this request came in on."""
    settings: Settings = request.app.state.settings
    if "base_url" in settings.model_fields_set:
        return settings.base_url.rstrip("/")
    return str(request.url_for("fhir_metadata")).removesuffix("/metadata")


@router.get("/metadata", name="fhir_metadata", summary="CapabilityStatement")
def metadata(request: Request) -> FHIRResponse:
    started = request.app.state.started_at
    catalogue = getattr(request.app.state, "recognition", None)
    return FHIRResponse(
        capability_statement(
            base_url=fhir_base(request),
            software_version=__version__,
            date=started,
            recognition=catalogue is not None,
            marks=catalogue is not None and catalogue.mark_results,
        )
    )


@router.get("/{resource_type}/{resource_id}", name="fhir_read", summary="Read")
def read(
    resource_type: str, resource_id: str, request: Request, session: SessionDep
) -> FHIRResponse:
    check_type(resource_type)
    _check_id(resource_id)
    summary, elements = subset_params(request)
    check_visible(request, session, resource_type, resource_id)  # a reader: its care only
    row = current(session, resource_type, resource_id)
    disclosed(
        request,
        "fhir.read",
        [row.body],
        interaction="read",
        resource_type=resource_type,
        session=session,
    )
    return FHIRResponse(
        subset(row.body, summary, elements),
        headers=_version_headers(row.version_id, row.last_updated),
    )


@router.get(
    "/{resource_type}/{resource_id}/_history/{version_id}",
    name="fhir_vread",
    summary="Read one version",
)
def vread(
    resource_type: str, resource_id: str, version_id: str, request: Request, session: SessionDep
) -> FHIRResponse:
    check_type(resource_type)
    _check_id(resource_id)
    summary, elements = subset_params(request)
    if paging_number(version_id) is None:  # ASCII digits, at most 2**31 - 1
        raise NotFoundError(
            f"{resource_type}/{resource_id} has no version {version_id[:40]!r}", location="vid"
        )
    check_visible(request, session, resource_type, resource_id)
    body = read_version(session, resource_type, resource_id, int(version_id))
    if body is None:
        raise NotFoundError(
            f"{resource_type}/{resource_id} has no version {version_id}", location="vid"
        )
    disclosed(
        request,
        "fhir.read",
        [body],
        interaction="vread",
        resource_type=resource_type,
        session=session,
    )
    last_updated = datetime.fromisoformat(body["meta"]["lastUpdated"])
    return FHIRResponse(
        subset(body, summary, elements), headers=_version_headers(int(version_id), last_updated)
    )


def _version_headers(version_id: int, last_updated: Any) -> dict[str, str]:
    return {
        "ETag": f'W/"{version_id}"',
        "Last-Modified": format_datetime(last_updated, usegmt=True),
    }

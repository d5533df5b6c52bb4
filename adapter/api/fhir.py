"""The FHIR read API under /fhir: metadata, read, vread, history (search: fhir_search.py)."""

from __future__ import annotations

import re
from datetime import datetime
from email.utils import format_datetime
from typing import Any

from fastapi import APIRouter, Request

from adapter import __version__
from adapter.api import bundles
from adapter.api.deps import SessionDep, SettingsDep
from adapter.api.responses import FHIRResponse
from adapter.errors import GoneError, InvalidRequestError, Issue, NotFoundError, UnsupportedError
from adapter.fhir.capability import capability_statement
from adapter.fhir.search_params import SUPPORTED_TYPES, is_supported
from adapter.fhir.search_query import PAGING_NUMBER_EXPECTED, paging_number
from adapter.settings import Settings
from adapter.store import read_history, read_version, resource_state

router = APIRouter(prefix="/fhir", tags=["FHIR"])

_ID_RE = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


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
    return FHIRResponse(
        capability_statement(
            base_url=fhir_base(request), software_version=__version__, date=started
        )
    )


@router.get("/{resource_type}/{resource_id}", name="fhir_read", summary="Read")
def read(resource_type: str, resource_id: str, session: SessionDep) -> FHIRResponse:
    check_type(resource_type)
    if resource_id == "_history":
        raise UnsupportedError(
            f"Type-level history is not supported; use {resource_type}/<id>/_history",
            location="id",
        )
    _check_id(resource_id)
    row = resource_state(session, resource_type, resource_id)
    if row is None:
        raise NotFoundError(f"{resource_type}/{resource_id} is not known", location="id")
    if row.deleted:
        raise GoneError(f"{resource_type}/{resource_id} was deleted", location="id")
    return FHIRResponse(row.body, headers=_version_headers(row.version_id, row.last_updated))


@router.get(
    "/{resource_type}/{resource_id}/_history",
    name="fhir_history",
    summary="History of one resource",
)
def history(
    resource_type: str,
    resource_id: str,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
) -> FHIRResponse:
    check_type(resource_type)
    _check_id(resource_id)
    params = dict(request.query_params)
    count = _paging_number(params, "_count", settings.page_size_default)
    count = min(count, settings.page_size_max)
    offset = _paging_number(params, "_offset", 0)
    total, versions = read_history(session, resource_type, resource_id, count=count, offset=offset)
    if total == 0:
        raise NotFoundError(f"{resource_type}/{resource_id} is not known", location="id")
    return FHIRResponse(
        bundles.history(
            base=fhir_base(request),
            resource_type=resource_type,
            resource_id=resource_id,
            total=total,
            versions=versions,
            count=count,
            offset=offset,
        )
    )


@router.get(
    "/{resource_type}/{resource_id}/_history/{version_id}",
    name="fhir_vread",
    summary="Read one version",
)
def vread(
    resource_type: str, resource_id: str, version_id: str, session: SessionDep
) -> FHIRResponse:
    check_type(resource_type)
    _check_id(resource_id)
    if paging_number(version_id) is None:  # ASCII digits, at most 2**31 - 1
        raise NotFoundError(
            f"{resource_type}/{resource_id} has no version {version_id[:40]!r}", location="vid"
        )
    body = read_version(session, resource_type, resource_id, int(version_id))
    if body is None:
        raise NotFoundError(
            f"{resource_type}/{resource_id} has no version {version_id}", location="vid"
        )
    last_updated = datetime.fromisoformat(body["meta"]["lastUpdated"])
    return FHIRResponse(body, headers=_version_headers(int(version_id), last_updated))


def check_type(resource_type: str) -> None:
    if not is_supported(resource_type):
        raise UnsupportedError(
            f"Resource type {resource_type[:80]!r} is not supported by this server "
            f"(supported: {', '.join(SUPPORTED_TYPES)})",
            location="type",
        )


def _check_id(resource_id: str) -> None:
    if not _ID_RE.match(resource_id):
        raise InvalidRequestError(f"{resource_id[:80]!r} is not a valid FHIR id", location="id")


def _version_headers(version_id: int, last_updated: Any) -> dict[str, str]:
    return {
        "ETag": f'W/"{version_id}"',
        "Last-Modified": format_datetime(last_updated, usegmt=True),
    }


def _paging_number(params: dict[str, str], name: str, default: int) -> int:
    if name not in params:
        return default
    value = params[name]
    number = paging_number(value)
    if number is None:
        raise InvalidRequestError(
            f"{name}={value!r}: {PAGING_NUMBER_EXPECTED}",
            issues=[
                Issue(
                    "error",
                    "value",
                    f"{name}={value!r}: {PAGING_NUMBER_EXPECTED}",
                    location=name,
                )
            ],
        )
    return number

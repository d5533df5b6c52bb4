"""FHIR operations: Patient/$everything, Composition/$document, $validate.

* ``$everything`` answers the resources of every Patient record of the person the given
  record belongs to (``adapter.identity.records_of``: the consortium patient index links
  records; until then a record is its own person), with the practitioners, organisations
  and other shared resources they refer to, in pages.
* ``$document`` answers the document Bundle stored from the same message as the
  Composition, exactly as stored (signatures and identifiers intact); when none was
  stored, it assembles one from the Composition and what it refers to.
* ``$validate`` checks a posted resource the way the pipeline checks what it produces
  (adapter/pipeline/checks.py: every primitive) and against the R4 structure
  (fhir.resources models), answering an OperationOutcome.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from adapter.api import bundles
from adapter.api.body import read_limited_body
from adapter.api.deps import SessionDep, SettingsDep
from adapter.api.disclosure import disclosed
from adapter.api.fhir import fhir_base
from adapter.api.fhir_request import check_id, check_known, check_type, current, paged_query
from adapter.api.responses import FHIRResponse
from adapter.api.scope import check_visible
from adapter.errors import (
    InputTooLargeError,
    InvalidRequestError,
    Issue,
    UnsupportedError,
    operation_outcome,
)
from adapter.fhir.dates import format_instant
from adapter.fhir.search_params import RESOURCES, is_supported
from adapter.identity import person_of, records_of
from adapter.oversize import Oversize
from adapter.pipeline.validate import validate_resource
from adapter.store.documents import stored_document
from adapter.store.everything import EverythingQuery, everything_page, read_many, referenced_keys
from adapter.store.visibility import is_visible

router = APIRouter(prefix="/fhir", tags=["FHIR operations"])

EVERYTHING_PARAMS = ("start", "end", "_since", "_type", "_count", "_offset")
FHIR_JSON_BODIES = ("application/fhir+json", "application/json")


@router.get(
    "/Patient/{patient_id}/$everything",
    name="fhir_everything",
    summary="Patient/$everything: a person's whole record, in pages",
)
def everything(
    patient_id: str, request: Request, session: SessionDep, settings: SettingsDep
) -> FHIRResponse:
    check_id(patient_id)
    # a reader: the person must be in its facility's care (then every record of the
    # person is: adapter/store/visibility.py), and shared resources are limited the same
    scope = check_visible(request, session, "Patient", patient_id)
    current(session, "Patient", patient_id)
    asked = paged_query(
        request,
        EVERYTHING_PARAMS,
        page_default=settings.page_size_default,
        page_max=settings.page_size_max,
    )
    care = None
    start, end = asked.range("start"), asked.range("end")
    if start is not None or end is not None:
        care = (
            start[0] if start else datetime(1, 1, 2, tzinfo=UTC),
            end[1] if end else datetime(9999, 12, 30, tzinfo=UTC),
        )
    types = _types(asked.params.get("_type"))
    count, offset = asked.count, asked.offset
    records = records_of(session, person_of(session, patient_id))
    query = EverythingQuery(
        [f"Patient/{rid}" for rid in records], types, asked.start("_since"), care, count, offset
    )
    total, bodies = everything_page(session, query)
    shared = [
        key
        for key in referenced_keys(bodies)
        if _shared_type(key[0]) and (types is None or key[0] in types)
    ]
    if scope is not None:
        shared = [k for k in shared if is_visible(session, scope, *k)]
    included = read_many(session, shared)
    disclosed(
        request,
        "fhir.search",
        [*bodies, *included],
        interaction="operation:everything",
        resource_type="Patient",
        params=asked.applied,
        total=total,
        session=session,
    )
    return FHIRResponse(
        bundles.operation_searchset(
            base=fhir_base(request),
            path=f"Patient/{patient_id}/$everything",
            params=asked.applied,
            total=total,
            matches=bodies,
            included=included,
            count=count,
            offset=offset,
        )
    )


def _shared_type(resource_type: str) -> bool:
    """Types outside any patient's compartment (practitioners, organisations ...)."""
    search = RESOURCES.get(resource_type)
    return search is not None and resource_type != "Patient" and not search.patient_params


def _types(value: str | None) -> list[str] | None:
    if value is None:
        return None
    types = [t.strip() for t in value.split(",") if t.strip()]
    unknown = [t for t in types if not is_supported(t)]
    if unknown or not types:
        message = f"_type={value[:80]!r}: not served here: {', '.join(unknown) or 'empty'}"
        raise InvalidRequestError(
            message, issues=[Issue("error", "not-supported", message, location="_type")]
        )
    return types


@router.get(
    "/Composition/{composition_id}/$document",
    name="fhir_document",
    summary="Composition/$document: the document Bundle of a Composition",
)
def document(composition_id: str, request: Request, session: SessionDep) -> FHIRResponse:
    check_id(composition_id)
    check_known(request, (k for k, _ in request.query_params.multi_items()), ("persist",))
    if request.query_params.get("persist", "false") != "false":
        raise UnsupportedError(
            "persist=true is not supported: the adapter serves documents read-only",
            location="persist",
        )
    check_visible(request, session, "Composition", composition_id)
    composition = current(session, "Composition", composition_id).body
    stored = stored_document(session, composition_id)
    bundle = stored if stored is not None else _assembled(session, composition, fhir_base(request))
    disclosed(
        request,
        "fhir.read",
        [e["resource"] for e in bundle.get("entry") or [] if isinstance(e.get("resource"), dict)],
        interaction="operation:document",
        resource_type="Composition",
        session=session,
    )
    return FHIRResponse(bundle)


def _assembled(session: SessionDep, composition: dict[str, Any], base: str) -> dict[str, Any]:
    """A document Bundle: the Composition first, then what it refers to (one level, and the
    section entries' own references)."""
    keys = referenced_keys([composition])
    first = read_many(session, keys)
    more = [k for k in referenced_keys(first) if k not in keys]
    resources = [composition, *first, *read_many(session, more)]
    identifier = (composition.get("identifier") or None) or {
        "system": "urn:ietf:rfc:3986",
        "value": f"urn:uuid:{uuid.uuid4()}",
    }
    if isinstance(identifier, list):
        identifier = identifier[0]
    return {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "identifier": identifier,
        "type": "document",
        "timestamp": format_instant(datetime.now(UTC)),
        "entry": [
            {"fullUrl": f"{base}/{r['resourceType']}/{r['id']}", "resource": r} for r in resources
        ],
    }


@router.post(
    "/{resource_type}/$validate",
    name="fhir_validate",
    summary="$validate: check a resource without storing it",
)
async def validate(resource_type: str, request: Request, settings: SettingsDep) -> FHIRResponse:
    check_type(resource_type)
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media not in FHIR_JSON_BODIES:
        raise _UnsupportedMedia(
            f"Content-Type {media[:80]!r}: $validate takes {' or '.join(FHIR_JSON_BODIES)}"
        )
    body = await read_limited_body(request, limit=settings.max_message_bytes, keep=0)
    if isinstance(body, Oversize):
        raise InputTooLargeError(
            f"the resource is over {settings.max_message_bytes} bytes (ADAPTER_MAX_MESSAGE_BYTES)"
        )
    resource, profile = _posted_resource(body)
    if (
        profile is not None
        and profile != f"http://hl7.org/fhir/StructureDefinition/{resource_type}"
    ):
        raise UnsupportedError(
            f"profile {profile[:120]!r} is not known here; the adapter validates against "
            f"the R4 base definition of {resource_type}",
            location="profile",
        )
    if resource.get("resourceType") != resource_type:
        raise InvalidRequestError(
            f"the posted resource is a {str(resource.get('resourceType'))[:40]!r}, "
            f"not a {resource_type}",
            location="resourceType",
        )
    issues = await run_in_threadpool(validate_resource, resource)
    if not issues:
        issues = [Issue("information", "informational", "No issues found")]
    return FHIRResponse(operation_outcome(issues))


class _UnsupportedMedia(InvalidRequestError):
    http_status = 415
    issue_code = "not-supported"


def _posted_resource(body: bytes) -> tuple[dict[str, Any], str | None]:
    """The resource (posted as itself or as Parameters.resource) and the profile asked for."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequestError(f"the body is not JSON: {exc}", code="structure") from None
    if not isinstance(data, dict):
        raise InvalidRequestError("the body is not a FHIR resource", code="structure")
    if data.get("resourceType") != "Parameters":
        return data, None
    resource, profile = None, None
    for parameter in data.get("parameter") or []:
        if not isinstance(parameter, dict):
            continue
        if parameter.get("name") == "resource":
            resource = parameter.get("resource")
        elif parameter.get("name") == "profile":
            profile = parameter.get("valueUri") or parameter.get("valueCanonical")
    if not isinstance(resource, dict):
        raise InvalidRequestError(
            "Parameters without a 'resource' parameter holding the resource", location="resource"
        )
    return resource, profile

"""Changing a referral Task over FHIR (docs/referral-loop.md, docs/api.md):

    PUT   /fhir/Task/{id}   the Task as it should be (status, businessStatus, statusReason,
                            output may differ from the stored one); a new Task for another
                            receiver of a stored referral, made by its sender
    PATCH /fhir/Task/{id}   JSON Patch (application/json-patch+json) on /status,
                            /businessStatus, /statusReason, /output

``If-Match: W/"n"``: refused with 412 when version n is no longer the current one (unless
the change is made already: the same change twice answers the current version).
``Prefer: return=minimal`` answers without a body. The asking facility is the
``X-Facility`` header for now (``asking_facility``); the state machine decides what it may
do as the Task's sender or receiver and refuses with an OperationOutcome naming the rule.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import jsonpatch
import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from adapter.api.authz import deny, principal_of
from adapter.api.deps import SessionFactoryDep
from adapter.api.fhir_request import check_id
from adapter.api.responses import FHIRResponse
from adapter.consortium import Consortium
from adapter.errors import InvalidRequestError, MessageError, NotFoundError
from adapter.referral.apply import (
    Applied,
    RefusedError,
    apply_change,
    audit_change,
    create_task,
)
from adapter.referral.machine import Change, business_of, outputs_of
from adapter.referral.rules import BUSINESS_SYSTEM, REASON_SYSTEM
from adapter.store import read_resource

router = APIRouter(tags=["referrals"])

FACILITY_HEADER = "X-Facility"
# the elements a referral change may touch; the rest of the Task is the referral's
CHANGEABLE = ("status", "businessStatus", "statusReason", "output", "lastModified", "meta", "text")
PATCHABLE = ("/status", "/businessStatus", "/statusReason", "/output")
MAX_BODY = 256 * 1024


def asking_facility(request: Request) -> str:
    """The facility asking: the facility of the client's token (docs/security.md); with
    authentication off, the ``X-Facility`` header. A header naming another facility than
    the token's is refused (403)."""
    named = request.headers.get(FACILITY_HEADER, "").strip()
    principal = principal_of(request)
    if principal is not None:
        if named and named != principal.facility:
            deny(request, principal, f"client {principal.client} acts for {principal.facility}")
        return principal.facility
    consortium: Consortium = request.app.state.consortium
    if consortium.facility(named) is None:
        raise InvalidRequestError(
            f"{FACILITY_HEADER} must name a member facility of the consortium",
            location=FACILITY_HEADER,
        )
    return named


def _expected_version(request: Request) -> int | None:
    value = request.headers.get("if-match")
    if value is None:
        return None
    digits = value.strip().removeprefix("W/").strip('"')
    if not digits.isdigit() or len(digits) > 10:
        raise InvalidRequestError('If-Match must be a version tag, e.g. W/"3"', location="If-Match")
    return int(digits)


async def _json(request: Request) -> Any:
    body = await request.body()
    if len(body) > MAX_BODY:
        raise InvalidRequestError(f"body over {MAX_BODY} bytes", location="body")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MessageError(f"body is not JSON: {exc}", location="body") from None


def change_between(stored: dict[str, Any], wanted: dict[str, Any], at: datetime) -> Change:
    """The referral change that turns ``stored`` into ``wanted``; any other element that
    differs is refused (the referral itself is the sender's slip, changed by messages)."""
    keys = (set(stored) | set(wanted)) - set(CHANGEABLE)
    others = sorted(k for k in keys if stored.get(k) != wanted.get(k))
    if others:
        raise MessageError(
            f"only status, businessStatus, statusReason and output change a referral Task; "
            f"these differ: {', '.join(others)}",
            location=f"Task.{others[0]}",
        )
    before, after = outputs_of(stored), outputs_of(wanted)
    if any(r not in after for r in before):
        raise MessageError("Task.output is only added to, never removed", location="Task.output")
    code = business_of(wanted)
    if wanted.get("businessStatus") and code is None:
        raise MessageError(
            f"Task.businessStatus needs a coding of {BUSINESS_SYSTEM}",
            location="Task.businessStatus",
        )
    reason, reason_text = None, None
    if wanted.get("statusReason") != stored.get("statusReason") and wanted.get("statusReason"):
        given = wanted["statusReason"]
        reason = next(
            (c.get("code") for c in given.get("coding") or [] if c.get("system") == REASON_SYSTEM),
            None,
        )
        if reason is None:
            raise MessageError(
                f"Task.statusReason needs a coding of {REASON_SYSTEM}",
                location="Task.statusReason",
            )
        reason_text = given.get("text")
    return Change(
        status=wanted.get("status") if wanted.get("status") != stored.get("status") else None,
        business=code if code != business_of(stored) else None,
        reason=reason,
        reason_text=reason_text,
        output=tuple(r for r in after if r not in before),
        at=at,
    )


def _answer(request: Request, applied: Applied, status_code: int) -> Response:
    updated = datetime.fromisoformat(applied.task["meta"]["lastUpdated"])
    headers = {
        "ETag": f'W/"{applied.version}"',
        "Last-Modified": format_datetime(updated, usegmt=True),
        "Location": f"{request.base_url}fhir/Task/{applied.task['id']}/_history/{applied.version}",
    }
    if "return=minimal" in request.headers.get("prefer", ""):
        return Response(status_code=status_code, headers=headers)
    return FHIRResponse(applied.task, status_code=status_code, headers=headers)


def _change(
    request: Request,
    factory: Any,
    task_id: str,
    wanted_of: Any,
    interaction: str,
) -> Response:
    facility = asking_facility(request)
    consortium: Consortium = request.app.state.consortium
    expected = _expected_version(request)
    now = datetime.now(UTC)
    try:
        with factory.begin() as session:
            stored = read_resource(session, "Task", task_id)
            if stored is None:
                wanted = wanted_of(None)
                applied = create_task(session, consortium, wanted, facility, now=now)
                status_code = 201
            else:
                change = change_between(stored, wanted_of(copy.deepcopy(stored)), now)
                applied = apply_change(
                    session,
                    consortium,
                    task_id,
                    change,
                    facility,
                    now=now,
                    expected_version=expected,
                )
                status_code = 200
            if applied.changed:
                audit_change(
                    session, task_id, facility, at=now, applied=applied, interaction=interaction
                )
    except RefusedError as refused:
        with factory.begin() as session:  # the refused transaction was rolled back
            audit_change(
                session, task_id, facility, at=now, refused=refused.rule, interaction=interaction
            )
        raise
    return _answer(request, applied, status_code)


_HEADERS = [
    {
        "name": FACILITY_HEADER,
        "in": "header",
        "required": True,
        "description": "the facility asking (a facility id of the consortium file)",
        "schema": {"type": "string"},
    },
    {
        "name": "If-Match",
        "in": "header",
        "required": False,
        "description": 'the version the change is made on, W/"<version>"',
        "schema": {"type": "string"},
    },
    {
        "name": "Prefer",
        "in": "header",
        "required": False,
        "description": "return=minimal (no body) or return=representation (the default)",
        "schema": {"type": "string"},
    },
]


def _body(media: str, description: str) -> dict[str, Any]:
    return {
        "parameters": _HEADERS,
        "requestBody": {
            "required": True,
            "description": description,
            "content": {media: {"schema": {"type": "object" if "fhir" in media else "array"}}},
        },
    }


@router.put(
    "/fhir/Task/{task_id}",
    name="referral_task_put",
    summary="Change (or make) a referral Task",
    status_code=200,
    openapi_extra=_body(
        "application/fhir+json",
        "the Task; only status, businessStatus, statusReason and output may differ",
    ),
)
async def put_task(task_id: str, request: Request, factory: SessionFactoryDep) -> Response:
    check_id(task_id)
    body = await _json(request)
    if not isinstance(body, dict) or body.get("resourceType") != "Task":
        raise MessageError("the body must be a Task", location="body")
    if body.get("id") != task_id:
        raise InvalidRequestError("the Task's id must be the id in the URL", location="Task.id")
    return _change(request, factory, task_id, lambda _stored: body, "update")


@router.patch(
    "/fhir/Task/{task_id}",
    name="referral_task_patch",
    summary="Change a referral Task by JSON Patch",
    openapi_extra=_body(
        "application/json-patch+json",
        "JSON Patch operations on /status, /businessStatus, /statusReason, /output",
    ),
)
async def patch_task(task_id: str, request: Request, factory: SessionFactoryDep) -> Response:
    check_id(task_id)
    kind = request.headers.get("content-type", "").split(";")[0].strip()
    if kind != "application/json-patch+json":
        raise InvalidRequestError(
            "PATCH takes a JSON Patch (Content-Type: application/json-patch+json)",
            location="Content-Type",
        )
    operations = await _json(request)
    if not isinstance(operations, list) or not all(isinstance(o, dict) for o in operations):
        raise MessageError("a JSON Patch is a list of operations", location="body")
    for n, op in enumerate(operations):
        path = str(op.get("path") or "")
        if op.get("op") != "test" and not any(
            path == p or path.startswith(p + "/") for p in PATCHABLE
        ):
            raise MessageError(
                f"operation {n}: only {', '.join(PATCHABLE)} are patched on a referral Task",
                location=f"body[{n}].path",
            )

    def patched(stored: dict[str, Any] | None) -> dict[str, Any]:
        if stored is None:
            raise NotFoundError(f"Task/{task_id} is not known (PUT makes one)", location="id")
        try:
            return jsonpatch.apply_patch(stored, operations)
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
            raise MessageError(f"the patch does not apply: {exc}", location="body") from None

    return _change(request, factory, task_id, patched, "patch")

"""Every error leaves the API as an OperationOutcome with the right HTTP status."""

from __future__ import annotations

import logging
import uuid

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from adapter.api.responses import FHIRResponse
from adapter.errors import AdapterError, Issue, operation_outcome

log = logging.getLogger("adapter.api")

_HTTP_CODES = {
    404: "not-found",
    405: "not-supported",
    406: "not-supported",
    413: "too-long",
    415: "not-supported",
}


def outcome_response(
    status: int, issues: list[Issue], headers: dict[str, str] | None = None
) -> FHIRResponse:
    return FHIRResponse(operation_outcome(issues), status_code=status, headers=headers)


async def _adapter_error(_request: Request, exc: Exception) -> FHIRResponse:
    assert isinstance(exc, AdapterError)
    headers = getattr(exc, "headers", None)
    return FHIRResponse(exc.outcome(), status_code=exc.http_status, headers=headers)


async def _validation_error(_request: Request, exc: Exception) -> FHIRResponse:
    assert isinstance(exc, RequestValidationError)
    issues = [
        Issue(
            "error",
            "invalid",
            str(err.get("msg", "invalid value")),
            location=".".join(str(p) for p in err.get("loc", ())) or None,
        )
        for err in exc.errors()
    ]
    return outcome_response(400, issues)


async def _http_error(_request: Request, exc: Exception) -> FHIRResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "processing")
    detail = exc.detail if isinstance(exc.detail, str) else "request failed"
    if exc.status_code == 404 and detail == "Not Found":
        detail = "No such endpoint"
    return outcome_response(
        exc.status_code, [Issue("error", code, detail)], headers=getattr(exc, "headers", None)
    )


async def _unexpected(request: Request, exc: Exception) -> FHIRResponse:
    ref = uuid.uuid4().hex[:12]
    # the path only: query strings may carry names or identifiers
    log.error(
        "unhandled %s on %s %s (ref %s)",
        type(exc).__name__,
        request.method,
        request.url.path,
        ref,
        exc_info=exc,
    )
    return outcome_response(
        500,
        [
            Issue(
                "fatal", "exception", f"Internal error; the server log has the details (ref {ref})"
            )
        ],
        # answered outside the middleware stack: the header must be set here
        headers={"X-Content-Type-Options": "nosniff"},
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AdapterError, _adapter_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)

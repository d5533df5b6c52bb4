"""``POST /auth/token``: OAuth 2.0 client credentials (RFC 6749 section 4.4).

Form fields ``grant_type=client_credentials``, ``client_id``, ``client_secret`` (or HTTP
Basic, section 2.3.1). The answer is ``{"access_token", "token_type": "Bearer",
"expires_in"}``; a refusal is the RFC's JSON error (``invalid_client`` 401,
``invalid_request`` / ``unsupported_grant_type`` 400), and past the failure limit 429 with
``Retry-After``. Every issue and every failure is in the audit log (``auth.token``); the
secret never is.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from urllib.parse import parse_qsl, unquote

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from adapter import audit
from adapter.api.authz import Authority
from adapter.audit.writer import record_now
from adapter.errors import UnsupportedError

router = APIRouter(tags=["auth"])
_MAX_FORM = 8192  # a token request is a few fields
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _oauth_error(status: int, error: str, description: str, **headers: str) -> JSONResponse:
    return JSONResponse(
        {"error": error, "error_description": description},
        status_code=status,
        headers={**_NO_STORE, **headers},
    )


def _basic(request: Request) -> tuple[str, str] | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, sep, secret = decoded.partition(":")
    return (unquote(client_id), unquote(secret)) if sep else None


async def _record(
    request: Request, client_id: str, outcome: audit.AuditOutcome, **detail: str | None
) -> None:
    """The auth.token record, committed (off the event loop) before the answer."""
    await run_in_threadpool(
        record_now,
        request.app.state.session_factory,
        audit.AuditEvent(
            action="auth.token",
            outcome=outcome,
            actor=f"client:{client_id[:64]}" if client_id else "anonymous",
            subject=None,
            correlation_id=None,
            at=datetime.now(UTC),
            detail=detail,
            client=client_id[:64] or None,
        ),
    )


@router.post("/auth/token", name="token", summary="An access token (client credentials)")
async def token(request: Request) -> JSONResponse:
    authority: Authority | None = request.app.state.auth
    if authority is None:
        raise UnsupportedError("authentication is off (ADAPTER_AUTH=off): no tokens are made")
    body = await request.body()
    if len(body) > _MAX_FORM:
        return _oauth_error(400, "invalid_request", "the form is too large")
    form = dict(parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True))
    basic = _basic(request)
    client_id, secret = basic or (form.get("client_id", ""), form.get("client_secret", ""))
    peer = request.client
    address = peer.host if peer else "-"
    if form.get("grant_type") != "client_credentials":
        await _record(request, client_id, "failure", reason="unsupported_grant_type")
        return _oauth_error(400, "unsupported_grant_type", "grant_type must be client_credentials")
    if not client_id or not secret:
        await _record(request, client_id, "failure", reason="invalid_request")
        return _oauth_error(400, "invalid_request", "client_id and client_secret are required")
    wait = authority.limiter.retry_after(client_id, address)
    if wait is not None:
        await _record(request, client_id, "failure", reason="rate_limited")
        return _oauth_error(
            429, "slow_down", "too many failed attempts; try later", **{"Retry-After": str(wait)}
        )
    client = request.app.state.consortium.client(client_id)
    # argon2 is slow on purpose: off the event loop
    if not await run_in_threadpool(authority.secrets.check, client, secret):
        authority.limiter.failed(client_id, address)
        await _record(request, client_id, "failure", reason="invalid_client")
        # one answer for an unknown client and a wrong secret: which ids exist is not said
        return _oauth_error(
            401,
            "invalid_client",
            "unknown client or wrong secret",
            **{"WWW-Authenticate": 'Basic realm="yigongti-fhir-adapter"'},
        )
    assert client is not None
    authority.limiter.succeeded(client_id, address)
    access_token, jti = authority.tokens.issue(client)
    await _record(request, client_id, "success", jti=jti, roles=",".join(sorted(client.roles)))
    return JSONResponse(
        {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": authority.tokens.lifetime,
        },
        headers=_NO_STORE,
    )

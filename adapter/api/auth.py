"""``POST /auth/token``: OAuth 2.0 client credentials (RFC 6749 section 4.4).

Form fields ``grant_type=client_credentials`` and one way of proving the client: ``client_id``
and ``client_secret`` (or HTTP Basic, section 2.3.1); a signed JWT ``client_assertion``
(RFC 7523, SMART Backend Services, adapter/auth/assertions.py); or ``client_id`` over a
connection that presented the client's registered certificate (mTLS, RFC 8705
``tls_client_auth``: the token is then bound to that certificate).
The answer is ``{"access_token", "token_type": "Bearer", "expires_in"}``; a refusal is
the RFC's JSON error (``invalid_client`` 401, ``invalid_request`` /
``unsupported_grant_type`` 400), and past the failure limit 429 with ``Retry-After``.
Every issue and every failure is in the audit log (``auth.token``); the secret never is.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from urllib.parse import parse_qsl, unquote

import jwt
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from jwt.algorithms import OKPAlgorithm
from starlette.concurrency import run_in_threadpool

from adapter import audit
from adapter.api.authz import Authority
from adapter.audit.writer import record_now
from adapter.auth import certificates
from adapter.auth.assertions import ALGORITHMS, ASSERTION_TYPE, AssertionRefused
from adapter.errors import UnsupportedError
from adapter.settings import originals_base

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
    assertion = form.get("client_assertion", "")
    presented = certificates.of_request(request)
    peer = request.client
    address = peer.host if peer else "-"
    if form.get("grant_type") != "client_credentials":
        await _record(request, client_id, "failure", reason="unsupported_grant_type")
        return _oauth_error(400, "unsupported_grant_type", "grant_type must be client_credentials")
    if assertion or form.get("client_assertion_type"):
        method = "private_key_jwt"
        if form.get("client_assertion_type") != ASSERTION_TYPE or not assertion:
            await _record(request, client_id, "failure", reason="invalid_request")
            return _oauth_error(
                400, "invalid_request", f"client_assertion_type must be {ASSERTION_TYPE}"
            )
        client_id = client_id or _claimed_issuer(assertion)
    elif secret:
        method = "client_secret"
    elif presented is not None and client_id:
        method = "tls_client_auth"
    else:
        await _record(request, client_id, "failure", reason="invalid_request")
        return _oauth_error(
            400,
            "invalid_request",
            "give client_id with client_secret, a client_assertion, or a client certificate",
        )
    wait = authority.limiter.retry_after(client_id, address)
    if wait is not None:
        await _record(request, client_id, "failure", reason="rate_limited")
        return _oauth_error(
            429, "slow_down", "too many failed attempts; try later", **{"Retry-After": str(wait)}
        )
    consortium = request.app.state.consortium
    client, refusal = None, "unknown client or wrong secret"
    if method == "private_key_jwt":
        try:
            client = authority.assertions.check(
                assertion, consortium, _token_urls(request), form.get("client_id", "")
            )
        except AssertionRefused as exc:
            refusal = str(exc)
    elif method == "client_secret":
        found = consortium.client(client_id)
        # argon2 is slow on purpose: off the event loop
        if await run_in_threadpool(authority.secrets.check, found, secret):
            client = found
    else:
        found = consortium.client(client_id)
        assert presented is not None
        if (
            found is not None
            and found.certificate
            and certificates.matches(found.certificate, presented)
        ):
            client = found
        else:
            refusal = "unknown client, or not the certificate registered for it"
    if client is None:
        authority.limiter.failed(client_id, address)
        await _record(request, client_id, "failure", reason="invalid_client", method=method)
        # one answer for an unknown client and a wrong credential: which ids exist is not said
        return _oauth_error(
            401,
            "invalid_client",
            refusal,
            **{"WWW-Authenticate": 'Basic realm="yigongti-fhir-adapter"'},
        )
    authority.limiter.succeeded(client_id, address)
    # a token asked for over a connection with a client certificate is bound to it
    bound = presented.thumbprint if presented is not None and client.certificate else None
    access_token, jti = authority.tokens.issue(client, bound_to=bound)
    await _record(
        request,
        client.id,
        "success",
        jti=jti,
        roles=",".join(sorted(client.roles)),
        method=method,
    )
    return JSONResponse(
        {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": authority.tokens.lifetime,
        },
        headers=_NO_STORE,
    )


def _claimed_issuer(assertion: str) -> str:
    """The client an assertion says it is from (checked later, with its signature): the key
    of the failure limit before anything is verified."""
    try:
        issuer = jwt.decode(assertion, options={"verify_signature": False}).get("iss")
    except jwt.PyJWTError:
        return ""
    return issuer[:64] if isinstance(issuer, str) else ""


def _token_urls(request: Request) -> list[str]:
    """The ``aud`` an assertion may name: this endpoint as the request reached it, and as
    ``ADAPTER_BASE_URL`` publishes it (behind a reverse proxy the two differ)."""
    here = str(request.url.replace(query="", fragment="")).rstrip("?")
    urls = [here]
    base = originals_base(request.app.state.settings)
    if base:
        urls.append(f"{base}/auth/token")
    return urls


@router.get(
    "/.well-known/jwks.json",
    name="jwks",
    summary="The public keys that verify this adapter's access tokens (JWK Set)",
)
async def jwks(request: Request) -> JSONResponse:
    """For receiving systems that check the adapter's tokens themselves: the signing key and
    the earlier keys still accepted (rotation), each with its ``kid``."""
    authority: Authority | None = request.app.state.auth
    if authority is None:
        raise UnsupportedError("authentication is off (ADAPTER_AUTH=off): no tokens are made")
    keys = []
    for kid, public in authority.tokens.keys.verifying.items():
        key = OKPAlgorithm.to_jwk(public, as_dict=True)
        keys.append({**key, "kid": kid, "use": "sig", "alg": "EdDSA"})
    return JSONResponse({"keys": keys}, headers={"Cache-Control": "max-age=300"})


@router.get(
    "/.well-known/smart-configuration",
    name="smart_configuration",
    summary="How to get a token here (SMART App Launch discovery, backend services subset)",
)
async def smart_configuration(request: Request) -> JSONResponse:
    base = originals_base(request.app.state.settings) or str(request.base_url).rstrip("/")
    return JSONResponse(
        {
            "issuer": request.app.state.settings.auth_issuer,
            "jwks_uri": f"{base}/.well-known/jwks.json",
            "token_endpoint": f"{base}/auth/token",
            "grant_types_supported": ["client_credentials"],
            "token_endpoint_auth_methods_supported": [
                "client_secret_basic",
                "client_secret_post",
                "private_key_jwt",
                "tls_client_auth",
            ],
            "token_endpoint_auth_signing_alg_values_supported": list(ALGORITHMS),
            "tls_client_certificate_bound_access_tokens": True,
            "capabilities": ["client-confidential-asymmetric", "client-confidential-symmetric"],
        }
    )

"""Log in and out, and the language switch.

Login is with a client of the consortium file (id and secret, the same check as
``POST /auth/token``: argon2 or the environment secret, the failure limiter, an
``auth.token`` audit record with ``via: console``). The login form itself is protected by
a double-submit token (a cookie and a hidden field), as no session exists yet. With
authentication off (``ADAPTER_AUTH=off``, trials only) the page offers to enter without a
client: every page and every facility, like the API then.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from adapter import audit
from adapter.api.authz import Authority
from adapter.audit.writer import record_now
from adapter.auth.rules import ROLES
from adapter.console.access import ConsoleState, current_session
from adapter.console.i18n import LANGUAGES
from adapter.console.render import NAVIGATION, SECURITY_HEADERS, page
from adapter.console.session import ANONYMOUS, COOKIE, LANG_COOKIE

router = APIRouter(include_in_schema=False)
LOGIN_COOKIE = "yigongti_console_login"


def safe_next(target: str | None) -> str:
    """Only a console path of this adapter (no other host, no scheme-relative URL)."""
    if target and target.startswith("/console/") and not target.startswith("//"):
        return target
    return "/console/"


def _login_form(request: Request, next_url: str, error: str | None, status: int = 200) -> Response:
    token = secrets.token_urlsafe(24)
    answer = page(
        request,
        "login.html",
        status=status,
        next_url=next_url,
        error=error,
        login_token=token,
        auth_on=request.app.state.console.auth_on,
    )
    answer.set_cookie(
        LOGIN_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        path="/console",
        secure=request.url.scheme == "https",
        max_age=1800,
    )
    return answer


@router.get("/console/login", name="console_login", response_class=HTMLResponse)
def console_login(request: Request, next: str | None = None) -> Response:
    return _login_form(request, safe_next(next), None)


def _record(request: Request, client_id: str, outcome: audit.AuditOutcome, **detail: str) -> None:
    record_now(
        request.app.state.session_factory,
        audit.AuditEvent(
            action="auth.token",
            outcome=outcome,
            actor=f"client:{client_id[:64]}" if client_id else "anonymous",
            subject=None,
            correlation_id=None,
            at=datetime.now(UTC),
            detail={"via": "console", **detail},
            client=client_id[:64] or None,
        ),
    )


@router.post("/console/login", name="console_login_post", response_class=HTMLResponse)
async def console_login_post(
    request: Request,
    login_token: Annotated[str, Form()] = "",
    client_id: Annotated[str, Form()] = "",
    secret: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/console/",
) -> Response:
    target = safe_next(next)
    cookie = request.cookies.get(LOGIN_COOKIE, "")
    if not cookie or not secrets.compare_digest(cookie.encode(), login_token.encode()):
        return _login_form(request, target, "login.expired", status=400)
    state: ConsoleState = request.app.state.console
    authority: Authority | None = request.app.state.auth
    if authority is None:  # authentication off: everything, like the API
        token, _ = state.signer.issue(ANONYMOUS, None, frozenset(ROLES), True)
        return _enter(request, token, target)
    client_id = client_id.strip()[:64]
    peer = request.client
    address = peer.host if peer else "-"
    if not client_id or not secret:
        return _login_form(request, target, "login.missing", status=400)
    if authority.limiter.retry_after(client_id, address) is not None:
        await run_in_threadpool(_record, request, client_id, "failure", reason="rate_limited")
        return _login_form(request, target, "login.slow_down", status=429)
    client = request.app.state.consortium.client(client_id)
    if not await run_in_threadpool(authority.secrets.check, client, secret):
        authority.limiter.failed(client_id, address)
        await run_in_threadpool(_record, request, client_id, "failure", reason="invalid_client")
        return _login_form(request, target, "login.wrong", status=401)
    assert client is not None
    authority.limiter.succeeded(client_id, address)
    token, _ = state.signer.issue(
        client.id, client.facility, frozenset(client.roles), client.scope == "consortium"
    )
    await run_in_threadpool(
        _record, request, client.id, "success", roles=",".join(sorted(client.roles))
    )
    return _enter(request, token, target)


def _enter(request: Request, token: str, target: str) -> Response:
    answer = RedirectResponse(target, status_code=303, headers=SECURITY_HEADERS)
    answer.set_cookie(
        COOKIE,
        token,
        httponly=True,
        samesite="strict",
        path="/console",
        secure=request.url.scheme == "https",
        max_age=request.app.state.console.signer.lifetime,
    )
    answer.delete_cookie(LOGIN_COOKIE, path="/console")
    return answer


@router.post("/console/logout", name="console_logout")
def console_logout(request: Request) -> Response:
    answer = RedirectResponse("/console/login", status_code=303, headers=SECURITY_HEADERS)
    answer.delete_cookie(COOKIE, path="/console")
    return answer


@router.get("/console/lang/{lang}", name="console_language")
def console_language(lang: str, next: str | None = None) -> Response:
    answer = RedirectResponse(safe_next(next), status_code=303, headers=SECURITY_HEADERS)
    if lang in LANGUAGES:
        answer.set_cookie(
            LANG_COOKIE, lang, samesite="strict", path="/console", max_age=365 * 86400
        )
    return answer


@router.get("/console/", name="console_home")
def console_home(request: Request) -> Response:
    """The first page the user may open; a page saying so when there is none."""
    session = current_session(request)
    for _key, url, roles in NAVIGATION:
        if session.roles & roles:
            return RedirectResponse(url, status_code=303, headers=SECURITY_HEADERS)
    return page(request, "home.html")

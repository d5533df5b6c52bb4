"""Authorisation: the one dependency every route runs (``create_app`` adds it to each
router), keyed on the route's name in the rule table (adapter/auth/rules.py).

With ``ADAPTER_AUTH=off`` it lets everything through (``principal`` None: no limits).
Otherwise: a public route needs nothing; any other needs ``Authorization: Bearer`` with a
token of this adapter (401 with ``WWW-Authenticate: Bearer`` otherwise), a client with one
of the rule's roles (403), and, by the rule's limit, a source system of its own facility
(``X-Source-System``) or ``scope: consortium``. The handlers narrow "facility" and "care"
routes further with :func:`principal_of`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from adapter import audit
from adapter.audit.context import authenticated
from adapter.audit.writer import record_now
from adapter.auth import certificates
from adapter.auth.assertions import Assertions
from adapter.auth.client_secrets import Secrets
from adapter.auth.ratelimit import FailureLimiter
from adapter.auth.rules import RULES, Rule
from adapter.auth.tokens import Principal, TokenError, TokenService
from adapter.console.access import ConsoleRefused, check_csrf, session_of
from adapter.errors import ForbiddenError, UnauthorizedError


@dataclass
class Authority:
    """What the API authenticates with (``app.state.auth``; None when auth is off)."""

    tokens: TokenService
    secrets: Secrets
    limiter: FailureLimiter
    assertions: Assertions


def principal_of(request: Request) -> Principal | None:
    """The authenticated caller; None when authentication is off (no limits then)."""
    return getattr(request.state, "principal", None)


def rule_of(request: Request) -> Rule | None:
    route = request.scope.get("route")
    return RULES.get(getattr(route, "name", ""))


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if not header:
        raise UnauthorizedError("this call needs Authorization: Bearer <token> (POST /auth/token)")
    if scheme.lower() != "bearer" or not token.strip():
        raise UnauthorizedError("Authorization must be Bearer <token>", error="invalid_request")
    return token.strip()


def deny(request: Request, principal: Principal, message: str, **detail: str | None) -> None:
    """Record the refusal (who tried what) and answer 403 (from a handler's thread)."""
    _record_denial(request, principal, detail)
    raise ForbiddenError(message)


async def _deny(request: Request, principal: Principal, message: str, **detail: str | None):
    """:func:`deny` from the event loop: the record is written off it."""
    await run_in_threadpool(_record_denial, request, principal, detail)
    raise ForbiddenError(message)


def _record_denial(request: Request, principal: Principal, detail: dict[str, str | None]) -> None:
    record_now(
        request.app.state.session_factory,
        audit.AuditEvent(
            action="auth.denied",
            outcome="failure",
            actor=f"client:{principal.client}",
            subject=None,
            correlation_id=None,
            at=datetime.now(UTC),
            detail={"method": request.method, "path": request.url.path[:200], **detail},
        ),
    )


async def authorize(request: Request) -> None:
    """The dependency of every route (async: the audit binding it makes is the request's)."""
    authority: Authority | None = request.app.state.auth
    rule = rule_of(request)
    if rule is not None and rule.session:
        await _authorize_session(request, rule)
        return
    if authority is None:
        request.state.principal = None
        return
    if rule is None:  # fail closed; the matrix test names the route
        raise ForbiddenError("this endpoint has no access rule")
    if rule.limit == "public":
        request.state.principal = None
        return
    try:
        presented = certificates.of_request(request)
        principal = authority.tokens.check(
            _bearer(request),
            request.app.state.consortium,
            presented.thumbprint if presented is not None else None,
        )
    except TokenError as exc:
        raise UnauthorizedError(str(exc), error="invalid_token") from None
    request.state.principal = principal
    authenticated(principal.client, principal.facility)
    if not principal.roles & rule.roles:
        await _deny(request, principal, f"client {principal.client} has no role for this call")
    if rule.limit == "consortium" and not principal.consortium_scope:
        await _deny(request, principal, "this call needs a client with scope: consortium")
    if rule.limit == "source":
        source = request.headers.get("x-source-system")
        found = request.app.state.consortium.source(source) if source else None
        if found is not None and found[0].id != principal.facility:
            await _deny(
                request,
                principal,
                f"source system {source} is not of facility {principal.facility}",
                source=source,
            )


async def _authorize_session(request: Request, rule: Rule) -> None:
    """A console page: its session cookie (even with authentication off, for the CSRF
    token), the rule's roles and scope, and the CSRF token on a POST."""
    session = session_of(request)
    request.state.console_session = session
    principal = session.principal
    request.state.principal = principal
    if principal is not None:
        authenticated(principal.client, principal.facility)
    allowed = bool(session.roles & rule.roles)
    if allowed and rule.limit == "consortium":
        allowed = session.consortium_scope
    if not allowed:
        if principal is not None:
            await run_in_threadpool(_record_denial, request, principal, {"via": "console"})
        raise ConsoleRefused("role")
    if request.method not in ("GET", "HEAD"):
        await check_csrf(request, session)

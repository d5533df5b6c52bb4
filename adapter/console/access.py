"""Who is using the console, checked by the API's one authorisation dependency
(adapter/api/authz.py) for every route whose rule says ``session`` (adapter/auth/rules.py).

No valid session: a GET is sent to the login page (303), anything else answers 401. A role
or scope the rule does not name, a POST without the session's CSRF token or from another
origin: 403 (a page in the console's language). What the page then shows is narrowed by
the same facility helpers as the JSON API (adapter/api/facility.py)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response

from adapter.console.session import COOKIE, ConsoleSession, SessionError, SessionSigner

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"


class LoginRequired(Exception):
    """No (valid) session."""


class ConsoleRefused(Exception):
    """A logged-in user may not do this (role, scope, CSRF)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class ConsoleState:
    """``app.state.console``: what the console signs sessions with."""

    signer: SessionSigner
    auth_on: bool


def session_of(request: Request) -> ConsoleSession:
    state: ConsoleState = request.app.state.console
    token = request.cookies.get(COOKIE)
    if not token:
        raise LoginRequired()
    try:
        return state.signer.check(token, request.app.state.consortium, state.auth_on)
    except SessionError:
        raise LoginRequired() from None


def current_session(request: Request) -> ConsoleSession:
    """The session ``authorize`` accepted for this request."""
    return request.state.console_session


async def check_csrf(request: Request, session: ConsoleSession) -> None:
    """A state-changing request carries the session's token and comes from this origin."""
    origin = request.headers.get("origin")
    if origin and origin != "null":
        host = request.headers.get("host", "")
        if urlsplit(origin).netloc != host:
            raise ConsoleRefused("csrf")
    given = request.headers.get(CSRF_HEADER)
    if given is None:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()  # cached: the handler reads the same form
            value = form.get(CSRF_FIELD)
            given = value if isinstance(value, str) else None
    if not session.check_csrf(given):
        raise ConsoleRefused("csrf")


def install_handlers(app: FastAPI) -> None:
    from adapter.console.render import refused_page

    @app.exception_handler(LoginRequired)
    async def _login(request: Request, exc: LoginRequired) -> Response:
        if request.method == "GET" and "application/json" not in request.headers.get("accept", ""):
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/console/login?next={quote(target)}", status_code=303)
        return Response("login required", status_code=401, media_type="text/plain")

    @app.exception_handler(ConsoleRefused)
    async def _refused(request: Request, exc: ConsoleRefused) -> Response:
        return refused_page(request, exc.reason)

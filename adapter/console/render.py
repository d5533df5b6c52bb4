"""Rendering: one Jinja2 environment (autoescaped), the console's security headers.

Every page answers with a strict Content-Security-Policy (scripts, styles, images and
connections from this adapter only, no inline script, no framing), ``no-store`` caching
(pages hold patient data) and no referrer. The page's CSRF token stands in a ``<meta>``
tag for the console's script and in a hidden field of each form.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from adapter import __version__
from adapter.console.i18n import LANGUAGES, Translator, language_of

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"
STATIC_URL = "/console/static"

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}

# (page key, URL, roles that may open it): the navigation shows only what the user may open
NAVIGATION: list[tuple[str, str, frozenset[str]]] = [
    ("overview", "/console/overview", frozenset({"operator", "admin"})),
    ("messages", "/console/messages", frozenset({"operator", "admin"})),
    ("deliveries", "/console/deliveries", frozenset({"operator", "admin"})),
    ("patients", "/console/patients", frozenset({"operator", "admin"})),
    ("referrals", "/console/referrals", frozenset({"reader", "operator"})),
    ("recognition", "/console/recognition", frozenset({"operator", "admin"})),
    ("mappings", "/console/mappings", frozenset({"operator", "admin"})),
    ("audit", "/console/audit", frozenset({"auditor"})),
]

_env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


CONSORTIUM_PAGES = frozenset({"patients"})  # the patient index: scope consortium only


def _scoped(key: str, session: object) -> bool:
    return key not in CONSORTIUM_PAGES or bool(getattr(session, "consortium_scope", False))


def page(
    request: Request, template: str, *, status: int = 200, active: str = "", **context: Any
) -> HTMLResponse:
    lang = language_of(request)
    session = getattr(request.state, "console_session", None)
    roles = session.roles if session is not None else frozenset()
    html = _env.get_template(template).render(
        t=Translator(lang),
        lang=lang,
        languages=LANGUAGES,
        session=session,
        csrf=session.csrf if session is not None else "",
        navigation=[
            (k, url) for k, url, allowed in NAVIGATION if roles & allowed and _scoped(k, session)
        ],
        active=active,
        static=STATIC_URL,
        version=__version__,
        path=request.url.path,
        **context,
    )
    return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)


def refused_page(request: Request, reason: str) -> HTMLResponse:
    return page(request, "refused.html", status=403, reason=reason)

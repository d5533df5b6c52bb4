"""Logging in to the console from a test client (TestClient or httpx), as a browser does:
the login page's form token, the session cookie, the page's CSRF token."""

from __future__ import annotations

import re
from typing import Any

from tests.api.auth_helpers import secret_of

_LOGIN_TOKEN = re.compile(r'name="login_token" value="([^"]+)"')
_CSRF = re.compile(r'name="csrf-token" content="([^"]*)"')


def login(client: Any, client_id: str | None, secret: str | None = None) -> Any:
    """Log in (``client_id`` None: authentication is off); the answer to the form POST."""
    form = client.get("/console/login")
    assert form.status_code == 200, form.text
    token = _LOGIN_TOKEN.search(form.text)
    assert token is not None
    data = {"login_token": token.group(1), "next": "/console/"}
    if client_id is not None:
        data |= {"client_id": client_id, "secret": secret or secret_of(client_id)}
    return client.post("/console/login", data=data, follow_redirects=False)


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found is not None and found.group(1), "the page carries no CSRF token"
    return found.group(1)

"""Checks on every request before any route sees it: what no endpoint can use and some
databases cannot even compare (PostgreSQL refuses a NUL character in text) answers a
located 400 instead of failing deep inside a query.

* a NUL character (``%00``) in the path or in a query parameter's name or value;
* a ``Content-Type`` header longer than 255 characters (the column that keeps it, and far
  beyond any real media type: RFC 6838 allows 127 characters each for type and subtype).
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Receive, Scope, Send

from adapter.api.responses import FHIRResponse
from adapter.errors import Issue, operation_outcome

MAX_CONTENT_TYPE = 255


class RequestChecks:
    """Pure ASGI middleware (it never reads the body, so streaming stays untouched)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            issue = request_problem(scope)
            if issue is not None:
                response = FHIRResponse(operation_outcome([issue]), status_code=400)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def request_problem(scope: Scope) -> Issue | None:
    if "\x00" in scope.get("path", ""):
        return Issue("error", "value", "the path contains a NUL character (%00)", location="path")
    query: bytes = scope.get("query_string", b"")
    if b"%00" in query or b"\x00" in query:
        for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
            if "\x00" in name or "\x00" in value:
                where = name.replace("\x00", "%00")
                return Issue(
                    "error",
                    "value",
                    f"query parameter {where!r} contains a NUL character (%00)",
                    location=where,
                )
    for key, value in scope.get("headers", ()):
        if key == b"content-type" and len(value) > MAX_CONTENT_TYPE:
            return Issue(
                "error",
                "too-long",
                f"the Content-Type header has {len(value)} characters, more than "
                f"{MAX_CONTENT_TYPE}: not a media type",
                location="Content-Type",
            )
    return None

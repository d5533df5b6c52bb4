"""The adapter's own access log: one line per request, query values masked.

Uvicorn's access log prints the whole request line, and search query strings carry names,
birth dates and identifiers (``/fhir/Patient?name=张伟&birthdate=1968-03-15``). So uvicorn
runs with ``access_log=False`` and this middleware logs instead (logger ``adapter.access``):

    127.0.0.1:40930 "GET /fhir/Patient?name=***&birthdate=***&_count=5" 200 12.3ms

Every query parameter keeps its name (``name:exact``) and loses its value (``***``), except
the few in :data:`HARMLESS_PARAMETERS` that steer paging, sorting and listing and never
hold personal data. A name that does not look like a parameter name is masked too.
"""

from __future__ import annotations

import logging
import re
import time
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("adapter.access")

MASK = "***"
HARMLESS_PARAMETERS = frozenset(
    {
        # FHIR result parameters
        "_count",
        "_offset",
        "_sort",
        "_summary",
        "_total",
        "_format",
        "_pretty",
        "_elements",
        "_include",
        "_revinclude",
        # /messages and /deliveries listings
        "limit",
        "offset",
        "status",
        "state",
        "destination",
    }
)
_PARAMETER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,63}(?::[A-Za-z0-9_.\-]{1,64})?")
_HARMLESS_VALUE = re.compile(r"[A-Za-z0-9_.,:\-]{1,64}")


def masked_query(query: str) -> str:
    """The query string with every value masked but those of harmless parameters."""
    parts = []
    for name, value in parse_qsl(query, keep_blank_values=True):
        if not _PARAMETER_NAME.fullmatch(name):
            parts.append(f"{MASK}={MASK}")
            continue
        base = name.split(":", 1)[0]
        keep = base in HARMLESS_PARAMETERS and _HARMLESS_VALUE.fullmatch(value)
        parts.append(f"{name}={value if keep else MASK}")
    return "&".join(parts)


class AccessLogMiddleware:
    """Logs method, path, masked query, status and duration of every HTTP request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # if the application fails before answering

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            _log_request(scope, status, (time.perf_counter() - started) * 1000)


def _log_request(scope: Scope, status: int, elapsed_ms: float) -> None:
    client = scope.get("client")
    who = f"{client[0]}:{client[1]}" if client else "-"
    query = scope.get("query_string", b"").decode("latin-1")
    target = scope.get("path", "")
    if query:
        target += "?" + masked_query(query)
    log.info('%s "%s %s" %d %.1fms', who, scope.get("method", "-"), target, status, elapsed_ms)

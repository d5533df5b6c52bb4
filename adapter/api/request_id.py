"""X-Request-Id: honoured when the caller sends a usable one, made otherwise, returned on
every answer, and bound for the audit log with the caller's address (adapter/audit/context.py).

Every audit record written while the request is served carries it; a message received in
the request takes it as its correlation id, so the caller can find every record of that
message, from receipt to delivery, by the id it sent (``GET /fhir/AuditEvent?entity-id=``).
"""

from __future__ import annotations

import re
import uuid

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from adapter.audit.context import Caller, serving

HEADER = "x-request-id"
_USABLE = re.compile(r"[A-Za-z0-9._:\-]{1,64}")  # what fits the audit log's column, no spaces


def request_id_of(scope: Scope) -> str:
    for key, value in scope.get("headers", ()):
        if key == HEADER.encode():
            given = value.decode("latin-1").strip()
            if _USABLE.fullmatch(given):
                return given
            break  # unusable (too long, odd characters): a new one, said in the answer
    return str(uuid.uuid4())


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope)
        client = scope.get("client")
        address = f"{client[0]}:{client[1]}" if client else None

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)[HEADER] = request_id
            await send(message)

        with serving(Caller(request_id=request_id, address=address)):
            await self.app(scope, receive, send_with_id)

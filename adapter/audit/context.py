"""Who is being served right now: the request's id and caller, for the audit writer.

The HTTP API binds one :class:`Caller` per request (adapter/api/request_id.py); events
recorded while it is bound take their request id, correlation id, client, facility and
address from it unless the caller of ``record`` gave them. Authentication (issue 11,
sections 1-2) will bind the authenticated client and its facility here instead of
``anonymous``; nothing else has to change.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

ANONYMOUS = "anonymous"


@dataclass(frozen=True, slots=True)
class Caller:
    request_id: str | None = None  # X-Request-Id, as given or made
    client: str | None = ANONYMOUS  # the authenticated client id; "anonymous" until auth
    facility: str | None = None  # the client's facility, once authentication knows it
    address: str | None = None  # the peer's host:port
    channel: str | None = "http"


_current: ContextVar[Caller | None] = ContextVar("audit_caller", default=None)


def current() -> Caller | None:
    return _current.get()


def acting_client() -> str:
    """The bound caller's client id for an audit record, else ``anonymous``."""
    caller = current()
    return caller.client if caller and caller.client else ANONYMOUS


def authenticated(client: str, facility: str) -> None:
    """The request being served is by ``client`` of ``facility`` (the API's authorisation
    dependency says so once the token is checked; the request's binding ends with it)."""
    bound = _current.get() or Caller()
    _current.set(
        Caller(
            request_id=bound.request_id,
            client=client,
            facility=facility,
            address=bound.address,
            channel=bound.channel,
        )
    )


@contextmanager
def serving(caller: Caller) -> Iterator[Caller]:
    """Bind ``caller`` while the block runs (one request, one CLI command)."""
    token = _current.set(caller)
    try:
        yield caller
    finally:
        _current.reset(token)

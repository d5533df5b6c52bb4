"""What the HTTP connectors (FHIR REST destination, FHIR pull source) share: settings for the
server, credentials, TLS and timeouts; the kept-alive httpx client; reading error answers."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Sequence
from typing import Any

import httpx
from pydantic import Field, field_validator

from adapter.connectors.auth import AuthSettings, NoAuth, TlsSettings, build_auth, ssl_context
from adapter.connectors.base import ConnectorSettings
from adapter.credentials import redact_credentials_in
from adapter.errors import DeliveryError, FatalDeliveryError, RetriableDeliveryError

FHIR_JSON = "application/fhir+json"

# answers worth another try later: the request may succeed unchanged. 401/403 are here too:
# a credential problem is the destination's, not the item's, and must not dead-letter it.
RETRIABLE_STATUSES = frozenset({401, 403, 408, 425, 429})


class HttpSettings(ConnectorSettings):
    base_url: str = Field(description="FHIR base URL, e.g. https://fhir.example.cn/fhir")
    auth: AuthSettings = Field(default_factory=NoAuth)
    tls: TlsSettings = Field(default_factory=TlsSettings)
    connect_timeout_seconds: float = Field(5.0, gt=0)
    timeout_seconds: float = Field(30.0, gt=0, description="read / write timeout")
    headers: dict[str, str] = Field(
        default_factory=dict, description="extra HTTP headers sent with every request"
    )

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("base_url must start with http:// or https://")
        return value.rstrip("/")

    def timeout(self) -> httpx.Timeout:
        return httpx.Timeout(self.timeout_seconds, connect=self.connect_timeout_seconds)


def http_client(settings: HttpSettings, *, where: str, max_connections: int) -> httpx.Client:
    """A kept-alive client for one connector (its connections are reused between sends)."""
    verify = ssl_context(settings.tls, where=where)
    timeout = settings.timeout()
    return httpx.Client(
        base_url=settings.base_url + "/",
        auth=build_auth(settings.auth, where=where, verify=verify, timeout=timeout),
        verify=verify,
        timeout=timeout,
        limits=httpx.Limits(
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            keepalive_expiry=60.0,
        ),
        headers={"Accept": FHIR_JSON, **settings.headers},
        follow_redirects=False,
    )


def retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (now if now is not None else time.time()))


def outcome_of(response: httpx.Response) -> dict[str, Any] | None:
    """The OperationOutcome in an error answer, if it holds one."""
    try:
        body = response.json()
    except ValueError:
        return None
    return (
        body if isinstance(body, dict) and body.get("resourceType") == "OperationOutcome" else None
    )


def outcome_summary(outcome: dict[str, Any] | None, *, limit: int = 200) -> str:
    """First issue of an OperationOutcome as one short line: code, where, what."""
    if not outcome:
        return ""
    issues = outcome.get("issue") or []
    if not issues or not isinstance(issues[0], dict):
        return ""
    first = issues[0]
    parts = [str(first.get("code") or "")]
    where = first.get("expression") or first.get("location")
    if where:
        parts.append(f"at {', '.join(map(str, where))}")
    text = first.get("diagnostics") or (first.get("details") or {}).get("text")
    if text:
        parts.append(str(text)[:limit])
    more = f" (+{len(issues) - 1} more)" if len(issues) > 1 else ""
    return " ".join(p for p in parts if p) + more


def error_for_status(
    status: int,
    *,
    what: str,
    outcome: dict[str, Any] | None = None,
    retry_after_header: str | None = None,
    secrets: Sequence[str] = (),
) -> DeliveryError:
    """The delivery error for a non-2xx status (of a whole request or a Bundle entry).

    The answer is kept (stored, shown): credentials it quotes are taken out here, before
    the summary is clipped, so that no clipped remainder of one survives."""
    if outcome is not None:
        outcome = redact_credentials_in(outcome, secrets)
    summary = outcome_summary(outcome)
    message = f"{what} answered HTTP {status}" + (f": {summary}" if summary else "")
    if status >= 500 or status in RETRIABLE_STATUSES:
        return RetriableDeliveryError(
            message,
            status=status,
            outcome_body=outcome,
            retry_after=retry_after(retry_after_header),
        )
    return FatalDeliveryError(message, status=status, outcome_body=outcome)


def error_for_response(
    response: httpx.Response, *, what: str, secrets: Sequence[str] = ()
) -> DeliveryError:
    return error_for_status(
        response.status_code,
        what=what,
        outcome=outcome_of(response),
        retry_after_header=response.headers.get("Retry-After"),
        secrets=secrets,
    )


def error_for_exception(exc: Exception, *, what: str) -> DeliveryError:
    """Transport failures: all worth another try (the server may have been down, slow, or
    cut the connection; PUT on deterministic ids makes a resend harmless)."""
    if isinstance(exc, DeliveryError):  # e.g. from the OAuth2 token endpoint
        return exc
    if isinstance(exc, httpx.TimeoutException):
        kind = {
            httpx.ConnectTimeout: "connect timeout",
            httpx.ReadTimeout: "read timeout",
            httpx.WriteTimeout: "write timeout",
            httpx.PoolTimeout: "no free connection",
        }.get(type(exc), "timeout")
        return RetriableDeliveryError(f"{what}: {kind}")
    if isinstance(exc, httpx.ConnectError):
        return RetriableDeliveryError(f"{what}: cannot connect ({_reason(exc)})")
    if isinstance(exc, httpx.RemoteProtocolError):
        return RetriableDeliveryError(f"{what}: connection dropped ({_reason(exc)})")
    if isinstance(exc, httpx.TransportError):
        return RetriableDeliveryError(f"{what}: {type(exc).__name__} ({_reason(exc)})")
    return RetriableDeliveryError(f"{what}: {type(exc).__name__}")


def _reason(exc: Exception) -> str:
    text = str(exc).strip()
    return text[:200] if text else type(exc).__name__

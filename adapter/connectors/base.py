"""What every connector shares, inbound or outbound: settings models that refuse unknown
keys, the result of a connection check, and timing a check.

The contracts themselves live with their side: a *destination* (outbound transport) in
:mod:`adapter.outbound.base`, a *source* or *listener* (inbound driver) in
:mod:`adapter.inbound.base`. The protocol helpers both sides use are here too:
:mod:`adapter.connectors.http` (HTTP client, error classification), ``auth`` (credentials,
TLS), ``hl7_ack`` (HL7 v2 ACKs), ``mllp_framing`` (MLLP frames) and ``files`` (atomic writes).

Each kind validates its own ``settings`` (destinations) or ``connector`` (sources) dict
with a pydantic model that forbids unknown keys, so a typo stops start-up with the
destination or source id and the key.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict
from pydantic import ValidationError as PydanticValidationError

from adapter.errors import ConfigError


@dataclass
class CheckResult:
    name: str
    kind: str
    reachable: bool
    latency_ms: float | None
    error: str | None = None


# -- settings ---------------------------------------------------------------------------------
class ConnectorSettings(BaseModel):
    """Base of every connector's settings model: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


S = TypeVar("S", bound=BaseModel)


def parse_settings(model: type[S], data: dict[str, Any] | None, *, where: str) -> S:
    """Validate a connector's settings; a mistake becomes a ``ConfigError`` naming ``where``
    (``destinations.<id>.settings``) and the key."""
    try:
        return model.model_validate(data or {})
    except PydanticValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(
            str(p)
            for p in first["loc"]
            if not str(p).startswith(("literal[", "function-", "tagged-union["))
        )
        message = first["msg"]
        if first["type"] == "extra_forbidden":
            message = "unknown setting (a typo?)"
        raise ConfigError(message, key=f"{where}.{key}" if key else where) from None


# -- helpers shared by the kinds ----------------------------------------------------------------
def timed_check(name: str, kind: str, probe: Callable[[], str | None]) -> CheckResult:
    """Run ``probe`` (returns an error text or None, may raise) and time it."""
    started = time.perf_counter()
    try:
        error = probe()
    except Exception as exc:  # any failure of a probe is a finding, not a crash
        error = describe_exception(exc)
    latency = round((time.perf_counter() - started) * 1000, 1)
    return CheckResult(name, kind, error is None, latency, error)


def describe_exception(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__

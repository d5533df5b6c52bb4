"""The destination contract (outbound transports) and how a destination is built.

A *destination* takes batches of outbox items and says, item by item, whether each was
delivered; it never raises for one bad item. The delivery worker (:mod:`adapter.delivery`)
is its only caller; a destination knows nothing of the outbox tables, retries or breakers.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from adapter.connectors.base import CheckResult
from adapter.consortium import Destination as DestinationConfig
from adapter.consortium import Facility
from adapter.errors import ConfigError, DeliveryError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker


@dataclass
class DeliveryItem:
    """One outbox row, with what to send."""

    outbox_id: int
    destination: str
    resource_type: str
    resource_id: str
    version_id: int  # the version the row was written for
    resource: dict[str, Any]  # the CURRENT stored body (meta stamped): a replay sends it
    patient_key: str | None = None
    message_id: str | None = None  # the inbound message it came from (MLLP resends its bytes)
    sequence: int | None = None  # the destination's sequence number (a resend keeps it)
    order_key: int | None = None  # the queue it keeps its order in (the patient's, hashed)


@dataclass
class ItemResult:
    outbox_id: int
    ok: bool
    error: DeliveryError | None = None  # RetriableDeliveryError / FatalDeliveryError
    status: int | str | None = None  # HTTP status or ACK code
    duration_ms: float = 0.0
    # not sent at all: an earlier row of its order key in the same batch failed and may be
    # retried, so this one must wait behind it (the worker gives it back to the queue)
    held: bool = False


@runtime_checkable
class Destination(Protocol):
    id: str
    kind: str  # "fhir" | "mllp" | "file"

    # Optional ``ordered: bool`` (False when absent): one ``send`` may carry several rows of
    # one order key (a patient's queue), because the destination applies them in order or
    # not at all, and answers ``held`` for the rows behind one that failed retriably.

    def check(self) -> CheckResult: ...

    def send(self, batch: list[DeliveryItem]) -> list[ItemResult]: ...

    def close(self) -> None: ...


@dataclass
class ConnectorContext:
    """What some destinations need besides their settings: the database (the MLLP
    destination reads the raw inbound message it resends)."""

    session_factory: sessionmaker[Session] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


DestinationFactory = Callable[..., Destination]

_DESTINATIONS: dict[str, DestinationFactory] = {}
# kinds whose modules register themselves when imported (imported on first use)
_DESTINATION_MODULES = {
    "fhir": "adapter.outbound.fhir_rest",
    "mllp": "adapter.outbound.mllp",
    "file": "adapter.outbound.file_drop",
}


def register_destination(kind: str) -> Callable[[DestinationFactory], DestinationFactory]:
    def decorate(factory: DestinationFactory) -> DestinationFactory:
        _DESTINATIONS[kind] = factory
        return factory

    return decorate


def build_destination(
    facility: Facility,
    config: DestinationConfig,
    *,
    session_factory: sessionmaker[Session] | None = None,
) -> Destination:
    """The destination for one configured entry; ``ConfigError`` if its settings are wrong.

    ``session_factory`` is needed by MLLP destinations (they resend the inbound message's
    raw bytes, read from the store); the other kinds ignore it.
    """
    if config.kind not in _DESTINATIONS and config.kind in _DESTINATION_MODULES:
        importlib.import_module(_DESTINATION_MODULES[config.kind])
    factory = _DESTINATIONS.get(config.kind)
    if factory is None:
        raise ConfigError(
            f"unknown destination kind {config.kind!r}", key=f"destinations.{config.id}.kind"
        )
    return factory(facility, config, ConnectorContext(session_factory=session_factory))


def validate_destinations(consortium: Any) -> None:
    """Build (and close) every destination of a consortium, so that a wrong setting or a
    missing secret stops start-up (``ConfigError`` naming id and key)."""
    for facility, config in consortium.destinations():
        built = build_destination(facility, config)
        built.close()

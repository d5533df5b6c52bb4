"""The connector contract: what a destination and a source are, and how they are built.

A *destination* takes batches of outbox items and says, item by item, whether each was
delivered; it never raises for one bad item. A *source* is polled: it yields documents,
and is told what became of each one (``finish``) once the pipeline has stored it. The MLLP
listener is a source too, but it is driven by its peers rather than polled, so it is built
by :func:`build_listener` instead.

Each kind validates its own ``settings`` (destinations) or ``connector`` (sources) dict
with a pydantic model that forbids unknown keys, so a typo stops start-up with the
destination or source id and the key.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel, ConfigDict
from pydantic import ValidationError as PydanticValidationError

from adapter.consortium import Destination as DestinationConfig
from adapter.consortium import Facility, SourceSystem
from adapter.errors import ConfigError, DeliveryError, Issue

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from adapter.pipeline.ingest import IngestResult
    from adapter.pipeline.oversize import Oversize


# -- what moves through the contract ----------------------------------------------------------
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


@dataclass
class ItemResult:
    outbox_id: int
    ok: bool
    error: DeliveryError | None = None  # RetriableDeliveryError / FatalDeliveryError
    status: int | str | None = None  # HTTP status or ACK code
    duration_ms: float = 0.0


@dataclass
class CheckResult:
    name: str
    kind: str
    reachable: bool
    latency_ms: float | None
    error: str | None = None


@dataclass
class SourceDocument:
    """One document read from a polled source.

    ``bookmark`` is where the source stands once this document is stored (FHIR pull: the
    document's ``meta.lastUpdated``); ``name`` says where it came from in log lines and
    ``ref`` is the source's own handle (the claimed file for a file drop). ``oversize`` is
    set instead of the whole ``raw`` when the document is over ``ADAPTER_MAX_MESSAGE_BYTES``
    (``raw`` then holds only its first bytes).
    """

    raw: bytes
    content_type: str | None
    bookmark: str | None = None
    name: str = ""
    ref: Any = None
    oversize: Oversize | None = None


@runtime_checkable
class Destination(Protocol):
    id: str
    kind: str  # "fhir" | "mllp" | "file"

    def check(self) -> CheckResult: ...

    def send(self, batch: list[DeliveryItem]) -> list[ItemResult]: ...

    def close(self) -> None: ...


@runtime_checkable
class Source(Protocol):
    id: str  # the source system id (consortium file)
    kind: str  # "file" | "fhir-pull"
    interval_seconds: float

    def check(self) -> CheckResult: ...

    def bookmark(self, factory: sessionmaker[Session] | None) -> str | None:
        """Where the next read starts, as committed in the database with the documents
        already stored (None: from the beginning, or the source keeps its own state)."""
        ...

    def read(self, bookmark: str | None) -> Iterator[SourceDocument]: ...

    def finish(
        self, document: SourceDocument, result: IngestResult | None, error: Exception | None = None
    ) -> None:
        """Called after the pipeline took the document (``result``) or failed to store it
        (``error``: nothing was stored, the document must be offered again later)."""
        ...

    def close(self) -> None: ...


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


# -- registries -------------------------------------------------------------------------------
DestinationFactory = Callable[..., Destination]
SourceFactory = Callable[..., "Source"]

_DESTINATIONS: dict[str, DestinationFactory] = {}
_SOURCES: dict[str, SourceFactory] = {}
# kinds whose modules register themselves when imported (imported on first use)
_DESTINATION_MODULES = {
    "fhir": "adapter.outbound.fhir_rest",
    "mllp": "adapter.inbound.mllp",  # its destination half moves to adapter.outbound next
    "file": "adapter.inbound.file_drop",  # its destination half moves to adapter.outbound next
}
_SOURCE_MODULES = {
    "file": "adapter.inbound.file_drop",
    "fhir-pull": "adapter.inbound.fhir_pull",
    "mllp": "adapter.inbound.mllp",
}
LISTENER_KINDS = frozenset({"mllp"})


def register_destination(kind: str) -> Callable[[DestinationFactory], DestinationFactory]:
    def decorate(factory: DestinationFactory) -> DestinationFactory:
        _DESTINATIONS[kind] = factory
        return factory

    return decorate


def register_source(kind: str) -> Callable[[SourceFactory], SourceFactory]:
    def decorate(factory: SourceFactory) -> SourceFactory:
        _SOURCES[kind] = factory
        return factory

    return decorate


@dataclass
class ConnectorContext:
    """What some connectors need besides their settings: the database (the MLLP
    destination reads the raw inbound message it resends)."""

    session_factory: sessionmaker[Session] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


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


def connector_kind(source: SourceSystem) -> str | None:
    if not source.connector:
        return None
    kind = source.connector.get("kind")
    if not isinstance(kind, str) or kind not in _SOURCE_MODULES:
        known = ", ".join(sorted(_SOURCE_MODULES))
        raise ConfigError(
            f"connector kind must be one of: {known}", key=f"sources.{source.id}.connector.kind"
        )
    return kind


def build_source(facility: Facility, source: SourceSystem) -> Source | None:
    """The polled source for a source system with a ``connector`` (file drop, FHIR pull);
    None when it has none or is a listener (see :func:`build_listener`)."""
    kind = connector_kind(source)
    if kind is None or kind in LISTENER_KINDS:
        return None
    return _source_factory(kind)(facility, source)


def build_listener(facility: Facility, source: SourceSystem) -> Any | None:
    """The listener (MLLP) for a source system, or None when it has no listener connector.
    Its ``serve(pipeline)`` runs it; see :mod:`adapter.inbound.mllp`."""
    kind = connector_kind(source)
    if kind is None or kind not in LISTENER_KINDS:
        return None
    return _source_factory(kind)(facility, source)


def _source_factory(kind: str) -> SourceFactory:
    if kind not in _SOURCES:
        importlib.import_module(_SOURCE_MODULES[kind])
    return _SOURCES[kind]


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


def failed_results(
    batch: list[DeliveryItem], error: DeliveryError, *, duration_ms: float = 0.0
) -> list[ItemResult]:
    return [ItemResult(item.outbox_id, False, error, error.status, duration_ms) for item in batch]


def issue_outcome(severity: str, code: str, diagnostics: str) -> dict[str, Any]:
    from adapter.errors import operation_outcome

    return operation_outcome([Issue(severity, code, diagnostics)])  # type: ignore[arg-type]


def validate_connectors(consortium: Any) -> None:
    """Build (and close) every destination and source connector of a consortium, so that a
    wrong setting or a missing secret stops start-up (``ConfigError`` naming id and key)."""
    for facility, config in consortium.destinations():
        built = build_destination(facility, config)
        built.close()
    for facility in consortium.facilities:
        for source in facility.sources:
            connector = build_source(facility, source) or build_listener(facility, source)
            close = getattr(connector, "close", None)
            if close is not None:
                close()

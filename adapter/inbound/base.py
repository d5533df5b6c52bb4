"""The source contract (inbound drivers) and how a source or listener is built.

A *source* is polled: it yields documents, and is told what became of each one
(``finish``) once the pipeline has stored it. The MLLP listener is a source too, but it is
driven by its peers rather than polled, so it is built by :func:`build_listener` instead.
Inbound drivers hand documents to the pipeline; they never deliver anything.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from adapter.connectors.base import CheckResult
from adapter.consortium import Facility, SourceSystem
from adapter.errors import ConfigError
from adapter.oversize import Oversize

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from adapter.pipeline import IngestResult


@dataclass
class SourceDocument:
    """One document read from a polled source.

    ``bookmark`` is where the source stands once this document is stored (FHIR pull: the
    document's ``meta.lastUpdated``); ``name`` says where it came from in log lines,
    ``peer`` on the stored message (default: ``name``; a pulled resource's URL), and
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
    peer: str | None = None


@runtime_checkable
class Source(Protocol):
    id: str  # the source system id (consortium file)
    kind: str  # "file" | "fhir-pull"
    channel: str  # the Receipt's channel (adapter/pipeline/receipt.py): file-drop, fhir-pull
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


SourceFactory = Callable[..., "Source"]

_SOURCES: dict[str, SourceFactory] = {}
# kinds whose modules register themselves when imported (imported on first use)
_SOURCE_MODULES = {
    "file": "adapter.inbound.file_drop",
    "fhir-pull": "adapter.inbound.fhir_pull",
    "mllp": "adapter.inbound.mllp",
}
LISTENER_KINDS = frozenset({"mllp"})


def register_source(kind: str) -> Callable[[SourceFactory], SourceFactory]:
    def decorate(factory: SourceFactory) -> SourceFactory:
        _SOURCES[kind] = factory
        return factory

    return decorate


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


def validate_sources(consortium: Any) -> None:
    """Build (and close) every source and listener of a consortium, so that a wrong setting
    or a missing secret stops start-up (``ConfigError`` naming id and key)."""
    for facility in consortium.facilities:
        for source in facility.sources:
            connector = build_source(facility, source) or build_listener(facility, source)
            close = getattr(connector, "close", None)
            if close is not None:
                close()

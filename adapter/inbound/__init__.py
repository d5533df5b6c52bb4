"""Inbound drivers: what brings documents to the pipeline.

mllp.py        the MLLP listener: stores each message, then acknowledges it
file_drop.py   a folder polled for files (claimed, ingested, moved to done/ or error/)
fhir_pull.py   a hospital FHIR server polled for resources changed since a bookmark
poller.py      running polled sources in order, one round at a time

source = build_source(facility, source_system)       # polled: file drop, FHIR pull
listener = build_listener(facility, source_system)   # MLLP

Inbound depends on the pipeline and the shared connector helpers (adapter.connectors);
never on outbound transports or the delivery worker.
"""

from adapter.inbound.base import (
    Source,
    SourceDocument,
    build_listener,
    build_source,
    register_source,
    validate_sources,
)

__all__ = [
    "Source",
    "SourceDocument",
    "build_listener",
    "build_source",
    "register_source",
    "validate_sources",
]

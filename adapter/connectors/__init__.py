"""Sources and destinations: FHIR REST, HL7 v2 over MLLP, file drops, FHIR REST pull.

destination = build_destination(facility, config, session_factory=factory)
results = destination.send(batch)        # one ItemResult per DeliveryItem, never raises
source = build_source(facility, source_system)   # polled: file drop, FHIR pull
listener = build_listener(facility, source_system)  # MLLP
"""

from adapter.connectors.base import (
    CheckResult,
    ConnectorContext,
    DeliveryItem,
    Destination,
    ItemResult,
    Source,
    SourceDocument,
    build_destination,
    build_listener,
    build_source,
    validate_connectors,
)

__all__ = [
    "CheckResult",
    "ConnectorContext",
    "DeliveryItem",
    "Destination",
    "ItemResult",
    "Source",
    "SourceDocument",
    "build_destination",
    "build_listener",
    "build_source",
    "validate_connectors",
]

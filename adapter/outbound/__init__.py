"""Outbound transports: the destinations the delivery worker sends through.

fhir_rest.py   FHIR REST: PUTs on deterministic ids, in transaction or batch Bundles
mllp.py        HL7 v2 over MLLP: resends the inbound message, waits for the ACK
file_drop.py   a folder: one file per resource or one transaction Bundle per batch
bundle.py      the PUT transaction Bundle, built in one place for every Bundle sender

destination = build_destination(facility, config, session_factory=factory)
results = destination.send(batch)        # one ItemResult per DeliveryItem, never raises

Outbound depends on the shared connector helpers (adapter.connectors) and the store; never
on inbound drivers, the pipeline or the delivery worker.
"""

from adapter.outbound.base import (
    ConnectorContext,
    DeliveryItem,
    Destination,
    ItemResult,
    build_destination,
    register_destination,
    validate_destinations,
)

__all__ = [
    "ConnectorContext",
    "DeliveryItem",
    "Destination",
    "ItemResult",
    "build_destination",
    "register_destination",
    "validate_destinations",
]

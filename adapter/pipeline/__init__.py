"""The spine of the adapter: ingest(), one transaction per message."""

from adapter.pipeline.ingest import (
    PROCESSED,
    QUARANTINED,
    RECEIVED,
    STATUSES,
    WARNINGS,
    IngestResult,
    Pipeline,
)

__all__ = [
    "PROCESSED",
    "QUARANTINED",
    "RECEIVED",
    "STATUSES",
    "WARNINGS",
    "IngestResult",
    "Pipeline",
]

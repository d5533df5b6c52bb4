"""The spine of the adapter: a Translator (no database) and the Pipeline that stores, one
transaction per message (adapter/pipeline/steps.py names its steps)."""

from adapter.pipeline.ingest import Pipeline
from adapter.pipeline.receipt import Channel, Receipt
from adapter.pipeline.results import (
    PROCESSED,
    QUARANTINED,
    RECEIVED,
    STATUSES,
    WARNINGS,
    IngestResult,
)
from adapter.pipeline.translator import Outcome, Translator

__all__ = [
    "PROCESSED",
    "QUARANTINED",
    "RECEIVED",
    "STATUSES",
    "WARNINGS",
    "Channel",
    "IngestResult",
    "Outcome",
    "Pipeline",
    "Receipt",
    "Translator",
]

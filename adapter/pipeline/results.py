"""What ingesting a message answers: its status and what it made (the same for every way in)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from adapter.errors import Issue
from adapter.store.loaded import loaded
from adapter.store.models import InboundMessage

RECEIVED = "received"
PROCESSED = "processed"
WARNINGS = "processed-with-warnings"
QUARANTINED = "quarantined"
STATUSES = (RECEIVED, PROCESSED, WARNINGS, QUARANTINED)


@dataclass(slots=True)
class IngestResult:
    message_id: str
    status: str
    resources: list[str]
    issues: list[Issue]
    duplicate: bool = False

    @property
    def accepted(self) -> bool:
        return self.status in (PROCESSED, WARNINGS)

    def as_dict(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "status": self.status,
            "duplicate": self.duplicate,
            "resources": self.resources,
            "issues": [i.as_dict() for i in self.issues],
        }


def result_of(message: InboundMessage, *, duplicate: bool = False) -> IngestResult:
    return IngestResult(  # the row's values as loaded (adapter/store/loaded.py, 0155)
        message_id=loaded(message, "id"),
        status=loaded(message, "status"),
        resources=list(loaded(message, "resources") or []),
        issues=[Issue.from_dict(i) for i in loaded(message, "issues") or []],
        duplicate=duplicate,
    )

"""The outbox's one row type, its attempts, and what a worker reports about a claimed row.

Every reader of the outbox (the worker, the operator commands, the API) gets
:class:`OutboxRow` values, never ORM objects or the table itself; the states are
:class:`adapter.store.models.OutboxState`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from adapter.store.models import OutboxState


def _instant(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """One ``outbox`` row: a resource version to deliver (or delivered) to one destination."""

    id: int
    destination: str
    resource_type: str  # the resource's, read through ``resource_key`` (decision 0084)
    resource_id: str
    version_id: int
    patient_key: str | None  # the resource's patient (``Patient/<id>``; a Patient's own)
    order_key: int  # its queue: ``enqueue.order_hash`` of the patient's key or its own
    state: OutboxState
    attempts: int
    next_attempt_at: datetime
    created_at: datetime
    last_error: str | None
    message_id: str | None
    claimed_by: str | None
    claimed_until: datetime | None
    first_attempt_at: datetime | None
    last_attempt_at: datetime | None
    delivered_at: datetime | None
    last_status: str | None  # HTTP status or ACK code
    sent_version_id: int | None  # the version that was delivered
    reason: str | None = None  # why the destination gets it (a route, a care relationship)
    person_id: str | None = None  # routed by care: the person ...
    care_facility: str | None = None  # ... and the facility whose care chose it
    sequence: int | None = None  # the destination's sequence number, given at the first send
    resource_key: int = 0  # ``resource.resource_key``: what the row stores

    @classmethod
    def of(
        cls, row: Mapping[str, Any], resource: ResourceNames, destination: str | None = None
    ) -> OutboxRow:
        """From a row read with ``names.ROW`` (the destination's name in it), or from the
        table's own columns with ``destination`` given (a claim's RETURNING: SQLite 3.40
        answered a correlated subquery there with another row's value); ``resource``: the
        (type, id, patient key) of its ``resource_key`` (``names.rows_of`` reads them)."""
        if destination is not None:
            row = {**row, "destination": destination}
        values = {f.name: row[f.name] for f in _STORED}
        values["state"] = OutboxState(values["state"])
        values["resource_type"], values["resource_id"], values["patient_key"] = resource
        return cls(**values)

    def summary(self) -> dict[str, Any]:
        """As listed by ``GET /deliveries``."""
        return {
            "id": self.id,
            "destination": self.destination,
            "resource": f"{self.resource_type}/{self.resource_id}",
            "version_id": self.version_id,
            "sent_version_id": self.sent_version_id,
            "patient": self.patient_key,
            "state": str(self.state),
            "attempts": self.attempts,
            "last_status": self.last_status,
            "last_error": self.last_error,
            "created_at": _instant(self.created_at),
            "first_attempt_at": _instant(self.first_attempt_at),
            "last_attempt_at": _instant(self.last_attempt_at),
            "next_attempt_at": _instant(self.next_attempt_at)
            if self.state == OutboxState.PENDING
            else None,
            "delivered_at": _instant(self.delivered_at),
            "claimed_by": self.claimed_by,
            "message_id": self.message_id,
            "reason": self.reason,
            "care_facility": self.care_facility,
            "person": self.person_id,
            "sequence": self.sequence,
        }


# (type, id, patient key) of a row's resource, read through its resource_key
ResourceNames = tuple[str, str, str | None]
_READ = {"resource_type", "resource_id", "patient_key"}
_STORED = tuple(f for f in fields(OutboxRow) if f.name not in _READ)


@dataclass(frozen=True, slots=True)
class AttemptRow:
    """One ``delivery_attempt`` row: one try to deliver an outbox row."""

    id: int
    outbox_id: int
    destination: str
    attempted_at: datetime
    version_id: int | None  # the version sent
    outcome: str  # delivered | retry | dead
    status: str | None
    error: str | None
    operation_outcome: dict[str, Any] | None
    duration_ms: float
    worker: str | None

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> AttemptRow:
        return cls(**{f.name: row[f.name] for f in fields(cls)})

    def summary(self) -> dict[str, Any]:
        """As listed in ``GET /deliveries/{id}`` (``attempt_log``)."""
        out: dict[str, Any] = {
            "attempted_at": self.attempted_at.isoformat(),
            "destination": self.destination,
            "outcome": self.outcome,
            "status": self.status,
            "error": self.error,
            "duration_ms": self.duration_ms,
            "version_id": self.version_id,
            "worker": self.worker,
        }
        if self.operation_outcome is not None:
            out["operation_outcome"] = self.operation_outcome
        return out


@dataclass(slots=True)
class Settlement:
    """What became of one claimed row after one try."""

    row: OutboxRow
    outcome: str  # delivered | retry | dead
    attempted_at: datetime
    status: str | None = None
    error: str | None = None
    operation_outcome: dict[str, Any] | None = None
    duration_ms: float = 0.0
    sent_version: int | None = None
    next_attempt_at: datetime | None = None
    cause: str | None = None  # of a dead letter: refused | exhausted | local | withdrawn


__all__ = ["AttemptRow", "OutboxRow", "OutboxState", "ResourceNames", "Settlement"]

"""What became of one sent (or unsendable) outbox row: the decision, not the writing.

``decide`` turns a destination's answer for one row into a :class:`Settlement`
(delivered, retry at a time from the destination's retry policy, or dead with its cause);
``count`` adds it to the batch's tally for the breaker; ``audit_events`` is what the
worker reports through :mod:`adapter.audit`: one ``delivery.delivered`` record per message
and patient of a batch (decision 0065), one record per retried or dead row. The outbox
repository writes settlements.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from adapter import audit
from adapter.credentials import redact_credentials, redact_credentials_in
from adapter.delivery.breaker import Tally
from adapter.delivery.policy import Schedule
from adapter.errors import FatalDeliveryError
from adapter.outbound.base import ItemResult
from adapter.store.outbox import OutboxRow, Settlement

# a settlement's outcome -> (audit action, audit outcome)
_AUDITED: dict[str, tuple[audit.AuditAction, audit.AuditOutcome]] = {
    "delivered": ("delivery.delivered", "success"),
    "retry": ("delivery.retry", "warning"),
    "dead": ("delivery.dead", "failure"),
}


def decide(
    row: OutboxRow,
    result: ItemResult,
    schedule: Schedule,
    *,
    started: datetime,
    finished: datetime,
    sent_version: int,
    duration_ms: float,
    secrets: Sequence[str] = (),
) -> Settlement:
    """Delivered, retried with the destination's policy, or dead (refused / exhausted).
    The error text and the destination's answer are kept without ``secrets`` (the
    destination's credentials) or anything credential-like (adapter.credentials)."""
    error = result.error
    status = (
        result.status
        if result.status is not None
        else (error.status if error is not None else None)
    )
    status_text = None if status is None else str(status)[:32]
    if result.ok:
        return Settlement(
            row,
            "delivered",
            started,
            status=status_text,
            duration_ms=duration_ms,
            sent_version=sent_version,
        )
    message = redact_credentials(
        str(error) if error is not None else "failed without an error", secrets
    )
    outcome_body = (
        redact_credentials_in(error.outcome_body, secrets)
        if error is not None and error.outcome_body is not None
        else None
    )
    if isinstance(error, FatalDeliveryError):
        return Settlement(
            row,
            "dead",
            started,
            status=status_text,
            error=message,
            operation_outcome=outcome_body,
            duration_ms=duration_ms,
            sent_version=sent_version,
            cause="refused",
        )
    decision = schedule.after_failure(
        attempts=row.attempts + 1,
        first_attempt_at=row.first_attempt_at or started,
        now=finished,
        retry_after=error.retry_after if error is not None else None,
    )
    if decision.retry_at is None:
        return Settlement(
            row,
            "dead",
            started,
            status=status_text,
            error=f"{message}; {decision.reason}",
            operation_outcome=outcome_body,
            duration_ms=duration_ms,
            sent_version=sent_version,
            cause="exhausted",
        )
    return Settlement(
        row,
        "retry",
        started,
        status=status_text,
        error=message,
        operation_outcome=outcome_body,
        duration_ms=duration_ms,
        sent_version=sent_version,
        next_attempt_at=decision.retry_at,
    )


def count(tally: Tally, s: Settlement) -> None:
    """Add one settlement to the batch's tally (what the breaker and the totals see)."""
    if s.outcome == "delivered":
        tally.delivered += 1
    elif s.outcome == "retry":
        tally.failed += 1
        tally.retried += 1
    else:
        tally.dead += 1
        if s.cause == "refused":
            tally.refused += 1
        elif s.cause == "exhausted":
            tally.failed += 1  # an exhausted policy ends on a retriable failure
        else:
            tally.local += 1


def audit_events(
    settlements: Sequence[Settlement], *, worker: str, sequences: Mapping[int, int] | None = None
) -> list[audit.AuditEvent]:
    """The audit records of one batch, in the order of its settlements: the delivered rows
    of one (destination, message, patient) make one ``delivery.delivered`` record, placed
    where its first row was (a record names one patient only, so a patient's disclosure
    report never lists another's resources); each retried or dead row its own record.
    ``sequences``: the rows' sequence numbers given for this send (else the row's own)."""
    sequences = sequences or {}
    # a group: its (settlement, entity) pairs and the set of its entities
    slots: list[audit.AuditEvent | tuple[list[tuple[Settlement, str]], set[str]]] = []
    open_groups: dict[tuple[str, str | None, str | None], tuple[list, set[str]]] = {}
    for s in settlements:
        if s.outcome != "delivered":
            slots.append(audit_event(s, worker=worker))
            continue
        row = s.row
        entity = _entity(s)
        key = (row.destination, row.message_id, row.patient_key)
        group = open_groups.get(key)
        if group is None or entity in group[1]:
            # a resource version twice (a replay beside the original): a record of its own,
            # so that the record's entities, ids and rows stay one per row, in step
            group = open_groups[key] = ([], set())
            slots.append(group)
        group[0].append((s, entity))
        group[1].add(entity)
    return [
        slot if isinstance(slot, audit.AuditEvent) else _delivered(slot[0], worker, sequences)
        for slot in slots
    ]


def _entity(s: Settlement) -> str:
    row = s.row
    version = s.sent_version if s.sent_version is not None else row.version_id
    return f"{row.resource_type}/{row.resource_id}/_history/{version}"


def _delivered(
    group: list[tuple[Settlement, str]], worker: str, sequences: Mapping[int, int]
) -> audit.AuditEvent:
    first = group[0][0].row
    if len(group) == 1:
        s, entity = group[0]
        status, at, ids, entities = s.status, s.attempted_at, (first.id,), (entity,)
    else:
        statuses = {s.status for s, _ in group}
        status = statuses.pop() if len(statuses) == 1 else None
        at = min(s.attempted_at for s, _ in group)
        ids = tuple(s.row.id for s, _ in group)
        entities = tuple(entity for _, entity in group)
    rows = " ".join(
        f"{_or_dash(sequences.get(s.row.id, s.row.sequence))}:{_or_dash(s.status)}:"
        f"{round(s.duration_ms)}"
        for s, _ in group
    )
    return audit.delivered_event(
        destination=first.destination,
        worker=worker,
        message_id=first.message_id,
        at=at,
        outbox_ids=ids,
        entities=entities,
        patients=(first.patient_key,) if first.patient_key else (),
        status=status,
        rows=rows,
    )


def _or_dash(value: object) -> str:
    return "-" if value is None else str(value)


def audit_event(s: Settlement, *, worker: str) -> audit.AuditEvent:
    """The record of one retried or dead row (delivered rows go by ``audit_events``)."""
    action, result = _AUDITED[s.outcome]
    row = s.row
    return audit.delivery_event(
        action,
        result,
        outbox_id=s.row.id,
        destination=s.row.destination,
        worker=worker,
        message_id=s.row.message_id,
        at=s.attempted_at,
        entities=(_entity(s),),
        patients=(row.patient_key,) if row.patient_key else (),
        status=s.status,
        cause=s.cause,
    )

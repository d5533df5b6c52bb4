"""What became of one sent (or unsendable) outbox row: the decision, not the writing.

``decide`` turns a destination's answer for one row into a :class:`Settlement`
(delivered, retry at a time from the destination's retry policy, or dead with its cause);
``count`` adds it to the batch's tally for the breaker; ``audit_event`` is what the
worker reports through :mod:`adapter.audit`. The outbox repository writes settlements.
"""

from __future__ import annotations

from collections.abc import Sequence
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


def audit_event(s: Settlement, *, worker: str) -> audit.AuditEvent:
    action, result = _AUDITED[s.outcome]
    row = s.row
    version = s.sent_version if s.sent_version is not None else row.version_id
    return audit.delivery_event(
        action,
        result,
        outbox_id=s.row.id,
        destination=s.row.destination,
        worker=worker,
        message_id=s.row.message_id,
        at=s.attempted_at,
        entities=(f"{row.resource_type}/{row.resource_id}/_history/{version}",),
        patients=(row.patient_key,) if row.patient_key else (),
        status=s.status,
        cause=s.cause,
    )

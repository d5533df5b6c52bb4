"""Audit: the one seam through which the adapter reports who did what, when, with what
outcome. Nothing is kept yet (no sink listens by default); the audit issue decides where
the events go (a table, FHIR AuditEvent resources, a log) without touching the callers.

    from adapter import audit
    audit.record(
        audit.AuditEvent(
            action="message.stored",
            outcome="success",
            actor="source:std-hl7v2",
            subject="InboundMessage/<id>",
            correlation_id="<message id>",
            at=moment,
        ),
        session=session,          # optional: the transaction the event belongs to
    )

Callers today: the pipeline (a message stored or quarantined, in its transaction) and the
delivery worker (an attempt settled, in its transaction).
"""

from adapter.audit.events import (
    AuditAction,
    AuditEvent,
    AuditOutcome,
    delivery_event,
    listening,
    message_event,
    record,
)

__all__ = [
    "AuditAction",
    "AuditEvent",
    "AuditOutcome",
    "delivery_event",
    "listening",
    "message_event",
    "record",
]

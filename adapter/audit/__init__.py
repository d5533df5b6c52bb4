"""Audit: the one seam through which the adapter reports who did what, when, with what
outcome. Every recorded event is kept in the hash-chained audit log (adapter/audit/writer.py)
in the transaction it was recorded in; docs/audit.md says what is recorded and how to check it.

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

Callers: the pipeline (received, translated, stored, quarantined, reprocessed, in its
transaction), the delivery worker (what each batch delivered, per message and patient, and
each failed attempt, in its transaction), the FHIR API (reads and searches: what was
disclosed to whom), the CLI and the start-up (replay, configuration loaded).
"""

from adapter.audit import writer as _writer
from adapter.audit.events import (
    AuditAction,
    AuditEvent,
    AuditOutcome,
    _sinks,
    delivered_event,
    delivery_event,
    listening,
    message_event,
    record,
    replay_event,
)

_sinks.append(_writer.sink)  # the audit log listens always

__all__ = [
    "AuditAction",
    "AuditEvent",
    "AuditOutcome",
    "delivered_event",
    "delivery_event",
    "listening",
    "message_event",
    "record",
    "replay_event",
]

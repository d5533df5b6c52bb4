"""The audit event shape and the ``record`` seam.

``record`` hands each event to the sinks that listen. The audit log's writer
(adapter/audit/writer.py) is always one of them: it keeps each event in the audit_record
table, in ``session``'s transaction. Tests listen with :func:`listening` to see what the
callers report.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

# what happened (docs/audit.md lists each with its BALP pattern)
AuditAction = Literal[
    "message.received",  # an inbound message's bytes were kept (or a duplicate answered)
    "message.translated",  # it was translated (mapping folder and fingerprint in detail)
    "message.stored",  # an inbound message and its resources were committed
    "message.quarantined",  # an inbound message was kept, not translated
    "message.reprocessed",  # an operator had a stored message translated again
    "delivery.delivered",  # outbox rows of one message and patient reached their destination
    "delivery.retry",  # an attempt failed and was rescheduled
    "delivery.dead",  # an outbox row became a dead letter
    "delivery.replayed",  # an operator put deliveries back in the queue
    "delivery.paused",  # an operator paused a destination (nothing is sent to it)
    "delivery.resumed",  # an operator resumed a paused destination
    "delivery.pruned",  # delivered outbox rows older than the retention were deleted
    "fhir.read",  # resources were disclosed by read, vread or history
    "fhir.search",  # resources were disclosed by a search
    "referral.changed",  # a referral Task moved (API, CLI or message; docs/referral-loop.md)
    "referral.refused",  # a change of a referral Task was refused, naming the rule
    "consent.recorded",  # a person's recognition consent was recorded (a new Consent)
    "consent.revoked",  # such a consent was withdrawn (a new Consent version, inactive)
    "recognition.marked",  # `adapter recognition mark` stored results with a changed mark
    "auth.token",  # a client asked for an access token (issued: success; refused: failure)
    "auth.denied",  # an authenticated client was refused a call (role or facility)
    "connection.refused",  # a listener closed a connection from a peer not in allow_from
    "config.loaded",  # the adapter started with a consortium file and mappings
    "audit.read",  # the audit log itself was read (once per request, not per record)
    "audit.verified",  # the audit log was verified
    "audit.checkpoint",  # a signed checkpoint was made
    "audit.archived",  # records were archived
    "audit.purged",  # archived and verified records were removed from the table
    "audit.refused",  # a change of the audit log was refused (PUT / DELETE AuditEvent)
]
AuditOutcome = Literal["success", "warning", "failure"]


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One auditable fact. ``detail`` holds short codes and ids only: never names, national
    IDs, phone numbers or message content (the same rule as the logs)."""

    action: AuditAction  # what
    outcome: AuditOutcome
    actor: str  # who: "source:<source id>", "worker:<worker id>", later "user:<id>"
    subject: str | None  # what it is about: "InboundMessage/<id>", "outbox/<id>"
    correlation_id: str | None  # ties one message's events together (the writer fills it)
    at: datetime  # when (timezone-aware)
    detail: Mapping[str, str | int | None] = field(default_factory=dict)
    # who, beyond ``actor``: left None, the writer takes them from the request being served
    # (adapter/audit/context.py); authentication will fill ``client`` and ``facility``
    client: str | None = None
    facility: str | None = None
    address: str | None = None
    channel: str | None = None
    message_id: str | None = None  # the inbound message it belongs to
    # what: references only ("Observation/x/_history/2"), never content
    entities: tuple[str, ...] = ()
    patients: tuple[str, ...] = ()  # "Patient/<id>" whose data this event touched


Sink = Callable[[AuditEvent, "Session | None"], None]

# each field's slot, in the fields' order: ``_made`` sets them without the frozen
# dataclass's ``__init__`` (an ``object.__setattr__`` call a field; decision 0148)
_SLOTS = tuple(getattr(AuditEvent, f.name).__set__ for f in fields(AuditEvent))


def _made(*values: Any) -> AuditEvent:
    """``AuditEvent(*values)``: every field given, in the fields' order."""
    event = object.__new__(AuditEvent)
    for put, value in zip(_SLOTS, values, strict=True):
        put(event, value)
    return event


log = logging.getLogger(__name__)
_sinks: list[Sink] = []
_sinks_lock = threading.Lock()


def record(event: AuditEvent, *, session: Session | None = None) -> None:
    """Report one event. With ``session``, the event belongs to that transaction (a sink
    that writes there keeps it only if the caller commits). Never raises into its caller:
    a failing sink is logged."""
    for sink in tuple(_sinks):
        try:
            sink(event, session)
        except Exception:  # auditing must not break ingest or delivery
            log.exception("audit sink failed for %s", event.action)


@contextmanager
def listening(sink: Sink) -> Iterator[None]:
    """Hand every recorded event to ``sink`` while the block runs."""
    with _sinks_lock:
        _sinks.append(sink)
    try:
        yield
    finally:
        with _sinks_lock:
            _sinks.remove(sink)


def message_event(
    action: AuditAction,
    outcome: AuditOutcome,
    *,
    message_id: str,
    source_system: str,
    at: datetime,
    facility: str | None = None,
    channel: str | None = None,
    address: str | None = None,
    entities: tuple[str, ...] = (),
    patients: tuple[str, ...] = (),
    **detail: str | int | None,
) -> AuditEvent:
    """An event about one inbound message, sent by ``source_system``. The correlation id
    is the one its receipt was recorded with (the writer looks it up)."""
    return _made(
        action,
        outcome,
        f"source:{source_system}",  # actor
        f"InboundMessage/{message_id}",  # subject
        None,  # correlation_id
        at,
        detail,
        None,  # client
        facility,
        address,
        channel,
        message_id,
        entities,
        patients,
    )


def delivery_event(
    action: AuditAction,
    outcome: AuditOutcome,
    *,
    outbox_id: int,
    destination: str,
    worker: str,
    message_id: str | None,
    at: datetime,
    entities: tuple[str, ...] = (),
    patients: tuple[str, ...] = (),
    **detail: str | int | None,
) -> AuditEvent:
    """An event about one outbox row, settled by ``worker``: a disclosure to
    ``destination`` of ``entities`` about ``patients``."""
    return AuditEvent(
        action=action,
        outcome=outcome,
        actor=f"worker:{worker}",
        subject=f"outbox/{outbox_id}",
        correlation_id=None,
        at=at,
        detail={"destination": destination, **detail},
        channel="delivery",
        message_id=message_id,
        entities=entities,
        patients=patients,
    )


def delivered_event(
    *,
    destination: str,
    worker: str,
    message_id: str | None,
    at: datetime,
    outbox_ids: tuple[int, ...],
    entities: tuple[str, ...],
    patients: tuple[str, ...],
    status: str | None,
    rows: str,
) -> AuditEvent:
    """The rows of one batch that reached ``destination``, all of one message and one patient
    (or none): one disclosure of ``entities``. ``outbox_ids`` (the subject), ``entities``
    and ``rows`` (``sequence:status:ms`` of each row, space-separated) are in the same
    order; ``status`` is the one every row got (None when they differ)."""
    return AuditEvent(
        action="delivery.delivered",
        outcome="success",
        actor=f"worker:{worker}",
        subject="outbox/" + ",".join(str(i) for i in outbox_ids),
        correlation_id=None,
        at=at,
        detail={"destination": destination, "status": status, "rows": rows},
        channel="delivery",
        message_id=message_id,
        entities=entities,
        patients=patients,
    )


def replay_event(
    *,
    actor: str,
    at: datetime,
    destination: str | None,
    count: int,
    delivery_id: int | None = None,
    entity: str | None = None,
    message_id: str | None = None,
    **detail: str | int | None,
) -> AuditEvent:
    """An operator put deliveries back in the queue (one, or a destination's)."""
    return AuditEvent(
        action="delivery.replayed",
        outcome="success",
        actor=actor,
        subject=f"outbox/{delivery_id}" if delivery_id is not None else None,
        correlation_id=None,
        at=at,
        detail={"destination": destination, "replayed": count, **detail},
        message_id=message_id,
        entities=(entity,) if entity else (),
    )

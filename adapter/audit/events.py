"""The audit event shape and the ``record`` seam.

``record`` hands each event to the sinks that listen; none does by default, so it keeps
nothing until the audit issue adds one (a table written in ``session``, AuditEvent
resources ...). Tests listen with :func:`listening` to see what the callers report.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

# what happened; the audit issue may add actions (reads, exports, operator commands)
AuditAction = Literal[
    "message.stored",  # an inbound message and its resources were committed
    "message.quarantined",  # an inbound message was kept, not translated
    "delivery.delivered",  # an outbox row reached its destination
    "delivery.retry",  # an attempt failed and was rescheduled
    "delivery.dead",  # an outbox row became a dead letter
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
    correlation_id: str | None  # ties one message's events together: the inbound message id
    at: datetime  # when (timezone-aware)
    detail: Mapping[str, str | int | None] = field(default_factory=dict)


Sink = Callable[[AuditEvent, "Session | None"], None]

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
    **detail: str | int | None,
) -> AuditEvent:
    """An event about one inbound message, sent by ``source_system``."""
    return AuditEvent(
        action=action,
        outcome=outcome,
        actor=f"source:{source_system}",
        subject=f"InboundMessage/{message_id}",
        correlation_id=message_id,
        at=at,
        detail=detail,
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
    **detail: str | int | None,
) -> AuditEvent:
    """An event about one outbox row, settled by ``worker``."""
    return AuditEvent(
        action=action,
        outcome=outcome,
        actor=f"worker:{worker}",
        subject=f"outbox/{outbox_id}",
        correlation_id=message_id,
        at=at,
        detail={"destination": destination, **detail},
    )

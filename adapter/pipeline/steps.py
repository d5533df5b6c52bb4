"""The named steps of storing one translated message, each a small function with one job,
run in order in the message's transaction (adapter/pipeline/ingest.py opens it):

    resolve_identity -> merge_with_stored -> save -> route -> enqueue -> record_result -> audit

Each step reads and extends one ``Work``. A new concern (patient resolution across the
consortium, routing by the patient's registered facility) is a new or richer step here,
not an edit of a long method. A translation that failed is not stored: ``quarantine``
settles the message instead.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from adapter import audit
from adapter.consortium import Consortium, Facility
from adapter.errors import Issue
from adapter.pipeline.merge import merge_stored, reads_stored
from adapter.pipeline.results import PROCESSED, QUARANTINED, WARNINGS
from adapter.pipeline.translator import WHOLE_MESSAGE
from adapter.routing import destinations_for
from adapter.store import enqueue_many, lock_resources, save_resources, set_message_result
from adapter.store.models import InboundMessage
from adapter.store.resources import LockedRows, Saved

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Work:
    """One message on its way into the store, in its transaction."""

    session: Session
    message: InboundMessage
    consortium: Consortium
    facility: Facility
    zone: ZoneInfo
    moment: datetime
    resources: list[dict[str, Any]]  # as translated; as to be stored after merge_with_stored
    policies: dict[Any, dict[str, Any]]  # (type, id) -> the template's on_conflict
    issues: list[Issue]
    origins: dict[Any, str | None] = field(default_factory=dict)  # (type, id) -> made from
    channel: str | None = None  # how it came in (receipt.py); "reprocess" for a reprocess
    locked: LockedRows | None = None
    saved: list[Saved] = field(default_factory=list)
    outbox: list[dict[str, Any]] = field(default_factory=list)

    @property
    def warned(self) -> bool:
        return any(i.severity == "warning" for i in self.issues)


def resolve_identity(work: Work) -> None:
    """Who the message's patients are across the consortium. Today the translator already
    gives a Patient its consortium-wide id (the national ID makes it, whichever facility
    sends it: mappings/_shared/common/datatypes/national-id-key.yaml), so the resources go
    on as made. Matching records without a national ID (adapter/identity) belongs here."""


def merge_with_stored(work: Work) -> None:
    """Lock first, then read, merge and write under that lock (docs/decisions/0009): another
    message about the same patient waits here until this one commits, then merges with what
    it wrote. Each resource is merged by its template's on_conflict (adapter/pipeline/merge.py)."""
    work.locked = lock_resources(
        work.session,
        ((r["resourceType"], r["id"]) for r in work.resources),
        create_missing=[
            (r["resourceType"], r["id"]) for r in work.resources if reads_stored(r, work.policies)
        ],
        now=work.moment,
    )
    merged: list[dict[str, Any]] = []
    for resource in work.resources:
        resource, conflicts = merge_stored(resource, work.locked.body, work.policies)
        merged.append(resource)
        where = work.origins.get((resource["resourceType"], resource["id"]))
        for conflict in conflicts:
            conflict.location = conflict.location or where or WHOLE_MESSAGE
        work.issues.extend(conflicts)
    work.resources = merged


def save(work: Work) -> None:
    """Store each resource as a new version (history and search index rows with it)."""
    work.saved = save_resources(
        work.session,
        work.resources,
        message_id=work.message.id,
        now=work.moment,
        facility_id=work.facility.id,
        zone=work.zone,
        locked=work.locked,
    )


def route(work: Work) -> None:
    """One outbox row per changed resource and destination that receives it (adapter/routing)."""
    for item in work.saved:
        if not item.changed:
            continue  # identical content: nothing new to deliver
        for destination in destinations_for(work.consortium, work.facility.id, item.resource_type):
            work.outbox.append(
                {
                    "destination": destination,
                    "resource_type": item.resource_type,
                    "resource_id": item.id,
                    "version_id": item.version_id,
                    "patient_key": item.patient_key,
                    "message_id": work.message.id,
                }
            )


def enqueue(work: Work) -> None:
    enqueue_many(work.session, work.outbox, now=work.moment)


def record_result(work: Work) -> None:
    """The message's status, issues and resources."""
    set_message_result(
        work.session,
        work.message,
        status=WARNINGS if work.warned else PROCESSED,
        issues=[i.as_dict() for i in work.issues],
        resources=[f"{s.resource_type}/{s.id}" for s in work.saved],
        now=work.moment,
    )
    log.info(
        "message %s from %s: %d resources (%d changed), %d outbox rows",
        work.message.id,
        work.message.source_system,
        len(work.saved),
        sum(1 for s in work.saved if s.changed),
        len(work.outbox),
    )


def audit_stored(work: Work) -> None:
    audit.record(
        audit.message_event(
            "message.stored",
            "warning" if work.warned else "success",
            message_id=work.message.id,
            source_system=work.message.source_system,
            at=work.moment,
            channel=work.channel,
            resources=len(work.saved),
            outbox_rows=len(work.outbox),
        ),
        session=work.session,
    )


STEPS: tuple[Callable[[Work], None], ...] = (
    resolve_identity,
    merge_with_stored,
    save,
    route,
    enqueue,
    record_result,
    audit_stored,
)


def store(work: Work) -> None:
    for step in STEPS:
        step(work)


def quarantine(
    session: Session,
    message: InboundMessage,
    issues: list[Issue],
    moment: datetime,
    *,
    channel: str | None = None,
) -> None:
    """Settle a message that is not stored as resources: quarantined with its located issues,
    kept to be reprocessed."""
    set_message_result(
        session,
        message,
        status=QUARANTINED,
        issues=[i.as_dict() for i in issues],
        resources=[],
        now=moment,
    )
    log.warning(
        "message %s from %s quarantined: %s", message.id, message.source_system, _summary(issues)
    )
    audit.record(
        audit.message_event(
            "message.quarantined",
            "failure",
            message_id=message.id,
            source_system=message.source_system,
            at=moment,
            channel=channel,
            issues=len(issues),
        ),
        session=session,
    )


def _summary(issues: list[Issue]) -> str:
    """Issue locations and codes only: diagnostics may quote patient data."""
    return ", ".join(f"{i.severity}:{i.code}@{i.location or '-'}" for i in issues[:5])

"""Planning and applying a remap of one source system's stored messages.

The plan translates each stored message again with the current mappings (no database
write), merges each resource with its stored version as storing would (the template's
``on_conflict``), and compares that with the stored version. Applying it reprocesses only
the messages with a change: the pipeline stores new versions of the changed resources only
(a resource whose content did not change keeps its version) and queues them for delivery.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from adapter.errors import AdapterError
from adapter.pipeline.merge import merge_stored
from adapter.remap.diff import Difference, difference, general, without_meta
from adapter.store import read_resource, verified_raw
from adapter.store.models import InboundMessage

REMAPPABLE = ("processed", "processed-with-warnings")


@dataclass(slots=True)
class ResourceChange:
    ref: str
    rule: str
    kind: str  # new | changed
    difference: Difference

    def as_dict(self) -> dict[str, Any]:
        return {
            "resource": self.ref,
            "rule": self.rule,
            "kind": self.kind,
            **self.difference.as_dict(),
        }


@dataclass(slots=True)
class MessagePlan:
    message_id: str
    received_at: str
    failing: bool = False  # the current mappings would quarantine it: not applied
    changes: list[ResourceChange] = field(default_factory=list)


@dataclass(slots=True)
class RemapPlan:
    source: str
    messages: list[MessagePlan] = field(default_factory=list)
    skipped_quarantined: int = 0

    @property
    def changed(self) -> list[MessagePlan]:
        return [m for m in self.messages if m.changes and not m.failing]

    def summary(self) -> list[dict[str, Any]]:
        """Per mapping rule, path and kind of change: how many resources."""
        counts: Counter[tuple[str, str, str]] = Counter()
        for message in self.messages:
            for change in message.changes:
                for kind in ("added", "removed", "changed"):
                    for path in {general(p) for p in getattr(change.difference, kind)}:
                        counts[(change.rule, path, kind)] += 1
                if change.kind == "new":
                    counts[(change.rule, change.ref.split("/", 1)[0], "new resource")] += 1
        return [
            {"rule": rule, "path": path, "change": kind, "resources": n}
            for (rule, path, kind), n in sorted(counts.items())
        ]

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "messages": len(self.messages),
            "messages_changed": len(self.changed),
            "messages_failing": sum(1 for m in self.messages if m.failing),
            "skipped_quarantined": self.skipped_quarantined,
            "resources_changed": sum(len(m.changes) for m in self.changed),
            "summary": self.summary(),
            "changes": [
                {"message": m.message_id, **c.as_dict()} for m in self.messages for c in m.changes
            ],
            "failing": [m.message_id for m in self.messages if m.failing],
        }


def plan_remap(
    pipeline: Any,
    factory: sessionmaker[Session],
    source_id: str,
    since: datetime | None,
    until: datetime | None,
) -> RemapPlan:
    found = pipeline.consortium.source(source_id)
    if found is None:
        raise AdapterError(f"unknown source system {source_id!r}")
    facility, source = found
    pipeline.translator.reload_source(facility, source)  # the mappings as they are now
    plan = RemapPlan(source_id)
    with factory() as session:
        query = select(InboundMessage.id, InboundMessage.status, InboundMessage.received_at).where(
            InboundMessage.source_system == source_id
        )
        if since is not None:
            query = query.where(InboundMessage.received_at >= since)
        if until is not None:
            query = query.where(InboundMessage.received_at < until)
        rows = session.execute(query.order_by(InboundMessage.received_at, InboundMessage.id)).all()
    for message_id, status, received_at in rows:
        if status not in REMAPPABLE:
            plan.skipped_quarantined += 1
            continue
        with factory() as session:
            message = session.get(InboundMessage, message_id)
            assert message is not None
            raw = verified_raw(message)
            outcome = pipeline.translator.translate_for(raw, facility, source, message_id)
            entry = MessagePlan(message_id, received_at.isoformat())
            if outcome.failed:
                entry.failing = True
            else:
                entry.changes = _changes(session, outcome)
        plan.messages.append(entry)
    return plan


def _changes(session: Session, outcome: Any) -> list[ResourceChange]:
    def read(rtype: str, rid: str) -> dict[str, Any] | None:
        return read_resource(session, rtype, rid)

    changes = []
    for resource in outcome.resources:
        rtype, rid = resource["resourceType"], resource["id"]
        merged, _ = merge_stored(resource, read, outcome.policies)
        stored = without_meta(read(rtype, rid))
        rule = f"{outcome.mapping or '?'} {_part(outcome.origins.get((rtype, rid)))} -> {rtype}"
        if stored is None:
            changes.append(ResourceChange(f"{rtype}/{rid}", rule, "new", Difference()))
            continue
        found = difference(stored, without_meta(merged), rtype)
        if found:
            changes.append(ResourceChange(f"{rtype}/{rid}", rule, "changed", found))
    return changes


def _part(origin: str | None) -> str:
    """``OBX[3]`` -> ``OBX``: the kind of input part (one rule makes one per part)."""
    return general(origin) if origin else "(document)"


def apply_remap(pipeline: Any, plan: RemapPlan) -> list[Any]:
    """Reprocess the messages with a change: new versions of the changed resources only."""
    return [pipeline.reprocess(message.message_id) for message in plan.changed]

"""Translating one parsed document with a mapping set: the entry point of the mapping engine."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import tzinfo
from typing import Any

from adapter.errors import Issue
from adapter.hl7v2 import Message, Segment
from adapter.mapping import hl7v2_paths as v2
from adapter.mapping.engine import Evaluation, TranslationState, run_steps
from adapter.mapping.loader import MappingSet, MessageMapping


@dataclass(slots=True)
class Translation:
    resources: list[dict[str, Any]]
    issues: list[Issue]
    mapping: str | None = None  # the message mapping used, "file@version"
    unread: list[str] = field(default_factory=list)  # locations of content no rule read

    @property
    def has_errors(self) -> bool:
        return any(i.severity in ("error", "fatal") for i in self.issues)


class Hl7v2Source:
    """The engine's view of an HL7 v2 message sorted into groups."""

    def __init__(self, tracker: v2.ReadTracker) -> None:
        self.tracker = tracker

    def resolve(self, path: v2.Hl7Path, scope: v2.Group) -> Any:
        return v2.resolve(path, scope, self.tracker)

    def iterate_path(self, path: v2.Hl7Path, scope: v2.Group) -> list[tuple[Any, Any]]:
        return [(node, scope) for node in v2.iterate(path, scope, self.tracker)]

    def scope_for(self, item: Any, scope: v2.Group) -> v2.Group:
        return scope

    def iterate_name(self, name: str, scope: v2.Group) -> list[v2.Group]:
        groups = scope.groups_named(name)
        if groups:
            return groups
        segments = scope.segments_named(name)
        for segment in segments:
            self.tracker.mark(segment, None)
        return [v2.segment_scope(segment, scope) for segment in segments]

    def describe(self, scope: v2.Group) -> str | None:
        segment = scope.first_segment
        return f"{segment.name}[{segment.occurrence}]" if segment else None


@dataclass(slots=True)
class TranslationContext:
    """What a translation may know besides the document: the facility and the time zone."""

    facility_system: Callable[[str], str]
    variables: dict[str, Any]
    timezone: tzinfo


def translate_hl7v2(mappings: MappingSet, message: Message,
                    context: TranslationContext) -> Translation:
    message_type = message.message_type()
    mapping = mappings.message_for("hl7v2", message_type)
    if mapping is None:
        supported = sorted(t for m in mappings.formats.get("hl7v2", _EMPTY).messages.values()
                           for t in m.message_types)
        issue = Issue("error", "not-supported",
                      f"message type {message_type or '(empty)'} has no mapping for this source "
                      f"(supported: {', '.join(supported) or 'none'})", location="MSH-9")
        return Translation([], [issue])
    root, unplaced = v2.build_groups(message, mapping.structure)
    tracker = v2.ReadTracker()
    formats = mappings.formats["hl7v2"]
    state = TranslationState(
        source=Hl7v2Source(tracker),
        concept_maps=mappings.concept_maps,
        datatypes=formats.datatypes,
        templates=formats.templates,
        timezone=context.timezone,
        facility_system=context.facility_system,
    )
    for group, name in v2.missing_required(root):
        where = Hl7v2Source(tracker).describe(group) or group.name
        kind = "group" if any(isinstance(c, v2.GroupSpec) and c.name == name
                              for c in group.spec.children) else "segment"
        state.issues.append(Issue("error", "required",
                                  f"group {group.name} has no {name} {kind}", location=where))
    if not state.issues:
        run_steps(Evaluation(state, root, dict(context.variables)), mapping.steps)
    unread = _unread(message, tracker, mapping, unplaced)
    for where, what in unread:
        state.issues.append(Issue("warning" if what == "segment" else "information",
                                  "informational", f"{what} not read by any mapping rule",
                                  location=where))
    return Translation(list(state.resources.values()), state.issues,
                       mapping=f"{mapping.file}@v{mapping.version}",
                       unread=[where for where, _ in unread])


_EMPTY = type("_Empty", (), {"messages": {}})()


def _unread(message: Message, tracker: v2.ReadTracker, mapping: MessageMapping,
            unplaced: list[Segment]) -> list[tuple[str, str]]:
    """Content present in the message that no rule looked at, unless the mapping ignores it."""
    ignore = mapping.ignore
    out: list[tuple[str, str]] = []
    unplaced_ids = {s.index for s in unplaced}
    for segment in message.segments:
        if segment.name in ignore:
            continue
        fields = [f for f in segment.populated_fields()
                  if not (segment.name == "MSH" and f in (1, 2))
                  and f"{segment.name}-{f}" not in ignore]
        if segment.index in unplaced_ids or (
                segment.index not in tracker.segments and fields):
            out.append((f"{segment.name}[{segment.occurrence}]", "segment"))
            continue
        out.extend((segment.location(f), "field") for f in fields
                   if (segment.index, f) not in tracker.fields)
    return out

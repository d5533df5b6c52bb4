"""Translating one parsed document with a mapping set: the entry point of the mapping engine."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import tzinfo
from typing import Any

from lxml import etree

from adapter.errors import Issue
from adapter.hl7v2 import Message, Segment
from adapter.mapping import csv_rows, json_paths, xml_paths
from adapter.mapping import hl7v2_paths as v2
from adapter.mapping.engine import FIRST_MENTION_WINS, run_steps
from adapter.mapping.evaluation import Evaluation, TranslationState
from adapter.mapping.loader import MappingSet
from adapter.mapping.nodes import MessageMapping


@dataclass(slots=True)
class Translation:
    resources: list[dict[str, Any]]
    issues: list[Issue]
    mapping: str | None = None  # the message mapping used, "file@version"
    unread: list[str] = field(default_factory=list)  # locations of content no rule read
    # (type, id) -> on_conflict policy of the template that made the resource
    policies: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)

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


def translate_hl7v2(
    mappings: MappingSet, message: Message, context: TranslationContext
) -> Translation:
    message_type = message.message_type()
    mapping = mappings.message_for("hl7v2", message_type)
    if mapping is None:
        supported = sorted(
            t
            for m in mappings.formats.get("hl7v2", _EMPTY).messages.values()
            for t in m.message_types
        )
        issue = Issue(
            "error",
            "not-supported",
            f"message type {message_type or '(empty)'} has no mapping for this source "
            f"(supported: {', '.join(supported) or 'none'})",
            location="MSH-9",
        )
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
        kind = (
            "group"
            if any(isinstance(c, v2.GroupSpec) and c.name == name for c in group.spec.children)
            else "segment"
        )
        state.issues.append(
            Issue("error", "required", f"group {group.name} has no {name} {kind}", location=where)
        )
    if not state.issues:
        run_steps(Evaluation(state, root, dict(context.variables)), mapping.steps)
    unread = _unread(message, tracker, mapping, unplaced)
    for where, what in unread:
        state.issues.append(
            Issue(
                "warning" if what == "segment" else "information",
                "informational",
                f"{what} not read by any mapping rule",
                location=where,
            )
        )
    return Translation(
        list(state.resources.values()),
        state.issues,
        mapping=f"{mapping.file}@v{mapping.version}",
        unread=[where for where, _ in unread],
        policies=dict(state.policies),
    )


_EMPTY = type("_Empty", (), {"messages": {}})()


def _unread(
    message: Message, tracker: v2.ReadTracker, mapping: MessageMapping, unplaced: list[Segment]
) -> list[tuple[str, str]]:
    """Content present in the message that no rule looked at, unless the mapping ignores it."""
    ignore = mapping.ignore
    out: list[tuple[str, str]] = []
    unplaced_ids = {s.index for s in unplaced}
    for segment in message.segments:
        if segment.name in ignore:
            continue
        fields = [
            f
            for f in segment.populated_fields()
            if not (segment.name == "MSH" and f in (1, 2)) and f"{segment.name}-{f}" not in ignore
        ]
        if segment.index in unplaced_ids or (segment.index not in tracker.segments and fields):
            out.append((f"{segment.name}[{segment.occurrence}]", "segment"))
            continue
        out.extend(
            (segment.location(f), "field")
            for f in fields
            if (segment.index, f) not in tracker.fields
        )
    return out


# -- XML, JSON and CSV ------------------------------------------------------------------------

ResourceCheck = Callable[[list[dict[str, Any]]], list[Issue]]


def _select(
    mappings: MappingSet, fmt: str, document: Any, what: str, where: str
) -> MessageMapping | Issue:
    """The one message mapping whose ``match:`` holds, or the issue saying why there is none."""
    found = mappings.matching(fmt, document)
    if len(found) == 1:
        return found[0]
    if found:
        names = ", ".join(f"{m.name} ({m.match.describe()})" for m in found)
        return Issue(
            "error",
            "multiple-matches",
            f"{what} matches several {fmt} message mappings: {names}; their match: "
            "must exclude each other",
            location=where,
        )
    tried = sorted(
        f"{m.name} ({m.match.describe()})"
        for m in mappings.formats.get(fmt, _EMPTY).messages.values()
    )
    return Issue(
        "error",
        "not-supported",
        f"{what} matches no {fmt} message mapping of this source "
        f"(tried: {'; '.join(tried) or 'none'})",
        location=where,
    )


def _state(
    mappings: MappingSet, fmt: str, source: Any, context: TranslationContext
) -> TranslationState:
    formats = mappings.formats[fmt]
    return TranslationState(
        source=source,
        concept_maps=mappings.concept_maps,
        datatypes=formats.datatypes,
        templates=formats.templates,
        timezone=context.timezone,
        facility_system=context.facility_system,
    )


def _finish(
    state: TranslationState, mapping: MessageMapping, unread: list[tuple[str, str]]
) -> Translation:
    for where, what in unread:
        state.issues.append(
            Issue(
                "information",
                "informational",
                f"{what} not read by any mapping rule",
                location=where,
            )
        )
    return Translation(
        list(state.resources.values()),
        state.issues,
        mapping=f"{mapping.file}@v{mapping.version}",
        unread=[where for where, _ in unread],
        policies=dict(state.policies),
    )


def translate_xml(mappings: MappingSet, root: Any, context: TranslationContext) -> Translation:
    """Translate an XML document (its root element) with the xml mapping its match selects."""
    name = etree.QName(root).localname
    mapping = _select(
        mappings, "xml", root, f"the document (root element {name})", xml_paths.element_path(root)
    )
    if isinstance(mapping, Issue):
        return Translation([], [mapping])
    tracker = xml_paths.XmlReadTracker()
    state = _state(mappings, "xml", xml_paths.XmlSource(tracker), context)
    run_steps(Evaluation(state, root, dict(context.variables)), mapping.steps)
    return _finish(state, mapping, xml_paths.unread(root, tracker, mapping.ignore_paths))


def translate_json(mappings: MappingSet, data: Any, context: TranslationContext) -> Translation:
    """Translate a parsed JSON document with the json mapping its match selects."""
    mapping = _select(mappings, "json", data, "the document", "$")
    if isinstance(mapping, Issue):
        return Translation([], [mapping])
    tracker = json_paths.JsonReadTracker()
    state = _state(mappings, "json", json_paths.JsonSource(data, tracker), context)
    run_steps(
        Evaluation(state, json_paths.JsonScope(data, ()), dict(context.variables)), mapping.steps
    )
    return _finish(state, mapping, json_paths.unread(data, tracker, mapping.ignore_paths))


def translate_csv(
    mappings: MappingSet,
    table: csv_rows.CsvTable,
    context: TranslationContext,
    check: ResourceCheck | None = None,
) -> Translation:
    """Translate each row of a CSV table as its own item: its own resources and issues.

    A row with an error (a mapping error, a resource ``check`` rejects, a resource another row
    made differently) is not imported; when other rows are, its errors are reported as
    warnings "row N not imported: ..." so the file is processed with warnings and the bad
    rows stay listed. When no row can be imported the errors stay errors (the file is
    quarantined as a whole). The same Patient, Organization or Practitioner in several rows:
    the first row's wins."""
    header = ", ".join(table.header)
    mapping = _select(mappings, "csv", table, f"the file (columns {header})", "row 1")
    if isinstance(mapping, Issue):
        return Translation([], [mapping])
    tracker = csv_rows.CsvReadTracker()
    source = csv_rows.CsvSource(tracker)
    resources: dict[tuple[str, str], dict[str, Any]] = {}
    made_by: dict[tuple[str, str], int] = {}
    policies: dict[tuple[str, str], dict[str, Any]] = {}
    per_row: list[tuple[int, list[Issue], bool]] = []  # (row, issues, imported)
    for row in table.rows:
        state = _state(mappings, "csv", source, context)
        state.issues.extend(row.problems)
        if not row.problems:
            run_steps(Evaluation(state, row, dict(context.variables)), mapping.steps)
        produced = list(state.resources.values())
        issues = list(state.issues)
        if check is not None and produced:
            issues.extend(check(produced))
        keys = [(r["resourceType"], r["id"]) for r in produced]
        if not _has_errors(issues):
            for key, resource in zip(keys, produced, strict=True):
                earlier = resources.get(key)
                if earlier is not None and earlier != resource and key[0] not in FIRST_MENTION_WINS:
                    issues.append(
                        Issue(
                            "error",
                            "duplicate",
                            f"{key[0]}/{key[1]} is also made by row "
                            f"{made_by[key]} with different content",
                            location=f"row {row.number}",
                        )
                    )
        imported = not _has_errors(issues)
        if imported:
            for key, resource in zip(keys, produced, strict=True):
                resources.setdefault(key, resource)
                made_by.setdefault(key, row.number)
            policies.update(state.policies)
        per_row.append((row.number, issues, imported))
    partial = any(imported for _, _, imported in per_row)
    out: list[Issue] = []
    for number, issues, imported in per_row:
        for issue in issues:
            where = issue.location or f"row {number}"
            if not imported and partial and issue.severity in ("error", "fatal"):
                issue = Issue(
                    "warning",
                    issue.code,
                    f"row {number} not imported: {issue.diagnostics}",
                    location=where,
                    expression=issue.expression,
                )
            elif issue.location is None:
                issue = Issue(
                    issue.severity,
                    issue.code,
                    issue.diagnostics,
                    location=where,
                    expression=issue.expression,
                )
            out.append(issue)
    if not table.rows:
        out.append(
            Issue(
                "information",
                "informational",
                "the file has a header and no rows",
                location="row 1",
            )
        )
    unread = csv_rows.unread(table, tracker, mapping.ignore)
    for where, what in unread:
        out.append(
            Issue(
                "information",
                "informational",
                f"{what} not read by any mapping rule",
                location=where,
            )
        )
    return Translation(
        list(resources.values()),
        out,
        mapping=f"{mapping.file}@v{mapping.version}",
        unread=[where for where, _ in unread],
        policies=policies,
    )


def _has_errors(issues: list[Issue]) -> bool:
    return any(i.severity in ("error", "fatal") for i in issues)

"""HL7 v2 (ER7) as a source format: messages sorted into groups by the structure a message
mapping declares, paths ``PID-3[2].1`` (``adapter.mapping.hl7v2_paths``), selected by message
type (MSH-9), unread segments and fields reported with their place (``ZLS[1]``, ``PV1[1]-3``)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from adapter.errors import Issue
from adapter.hl7v2 import Message, Segment, parse_hl7v2
from adapter.input_limits import DEFAULT_LIMITS, InputLimits
from adapter.mapping import hl7v2_paths as v2
from adapter.mapping.folders import MappingFile
from adapter.mapping.formats.base import Parsed, SourceFormat, best_place
from adapter.mapping.nodes import MappingSet, MessageMapping
from adapter.mapping.schema import STRINGS


class Hl7v2Source:
    """The engine's view of an HL7 v2 message sorted into groups (``SourceAdapter``)."""

    resolve: Callable[[v2.Hl7Path, v2.Group], Any]
    resolve_text: Callable[[v2.Hl7Path, v2.Group], Any]
    peek: Callable[[v2.Hl7Path, v2.Group], str]
    # ``first``'s alternatives not taken: peek, then resolve when empty or the same, in one
    # call that skips a path already resolved in its segment (decision 0112)
    read_unless_other: Callable[[v2.Hl7Path, v2.Group, str], None]
    # the same for every path ``first`` did not take, in one call (decision 0139)
    read_alternatives: Callable[[tuple[v2.Hl7Path, ...], v2.Group, str], None]

    def __init__(self, tracker: v2.ReadTracker, unplaced: list[Segment] | None = None) -> None:
        self.tracker = tracker
        self.unplaced = unplaced or []  # segments the structure has no place for
        # the path readers bound to the tracker (its methods, decision 0144): one Python
        # call per path read, not two
        self.resolve = tracker.read_path
        self.resolve_text = tracker.read_text
        self.peek = v2.peek
        self.read_unless_other = tracker.read_unless_other
        self.read_alternatives = tracker.read_alternatives

    def iterate_path(self, path: v2.Hl7Path, scope: v2.Group) -> list[tuple[Any, Any]]:
        out: list[tuple[Any, Any]] = []  # a loop, not a comprehension (a function made per call)
        for node in v2.iterate(path, scope, self.tracker):
            out.append((node, scope))
        return out

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
        segment = _FIRST_SEGMENT(scope)  # the property's function, called at once (0149)
        return f"{segment.name}[{segment.occurrence}]" if segment else None


_FIRST_SEGMENT = v2.Group.first_segment.fget


@dataclass(frozen=True, slots=True)
class MessageTypes:
    """``match: {message_type: [ORU^R01, ...]}``: MSH-9 is one of them."""

    types: tuple[str, ...]

    def matches(self, message: Message) -> bool:
        return message.message_type() in self.types

    def describe(self) -> str:
        return "message_type " + ", ".join(self.types)


class Hl7v2Format(SourceFormat):
    name = "hl7v2"
    media_types: ClassVar[Mapping[str, str]] = {"hl7v2": "x-application/hl7-v2+er7"}
    match_schema: ClassVar[dict[str, Any]] = {
        "required": ["message_type"],
        "properties": {"message_type": STRINGS},
    }
    message_keys = frozenset({"structure"})
    has_groups = True

    def parse(
        self, raw: bytes, *, max_bytes: int | None = None, limits: InputLimits = DEFAULT_LIMITS
    ) -> Parsed:
        message = parse_hl7v2(raw, max_bytes=max_bytes, limits=limits)
        return Parsed(message, message.charset, message.issues)

    def locate_value(self, document: Message, value: str) -> str | None:
        """``PRD[1]-2[1].1``: the component (or subcomponent) holding ``value``."""
        found = best_place(
            value,
            (
                ((segment, f, r, c, s), segment.get(f, r, c, s))
                for segment in document
                for f, r, c, s in segment.populated()
            ),
        )
        if found is None:
            return None
        segment, f, r, c, s = found
        split = len(segment.subcomponents(f, r, c)) > 1  # name the subcomponent when there are more
        return segment.location(f, r, c, s if split else None)

    def compile_path(self, text: str, options: Any) -> v2.Hl7Path:
        return v2.compile_path(text)

    def compile_match(self, match: dict[str, Any], options: Any) -> MessageTypes:
        return MessageTypes(tuple(match.get("message_type", [])))

    def compile_structure(self, file: MappingFile) -> v2.GroupSpec:
        try:
            return v2.compile_structure(file.data.get("structure") or [])
        except (ValueError, KeyError, TypeError) as exc:
            raise file.fail(f"structure: {exc}", ("structure",)) from None

    def check_steps(self, file: MappingFile, mapping: MessageMapping) -> None:
        _check_each_targets(file, file.data["produce"], mapping.structure, ("produce",))

    def select(self, mappings: MappingSet, document: Message) -> MessageMapping | Issue:
        """The mapping of the message type (MSH-9)."""
        message_type = document.message_type()
        mapping = mappings.message_for(self.name, message_type)
        if mapping is not None:
            return mapping
        bucket = mappings.formats.get(self.name)
        messages = bucket.messages.values() if bucket is not None else ()
        supported = sorted(t for m in messages for t in m.match.types)
        return Issue(
            "error",
            "not-supported",
            f"message type {message_type or '(empty)'} has no mapping for this source "
            f"(supported: {', '.join(supported) or 'none'})",
            location="MSH-9",
        )

    # observation values and notes: OBX-5 value, NTE-3 comment, OBR-13 relevant clinical
    # information, DG1-3/-4 diagnosis code and text, AL1-3/-5 allergen and reaction; of a
    # coded diagnosis or allergen the code and its text (component 3 names the code system)
    default_clinical: ClassVar[tuple[str, ...]] = (
        "OBX-5",
        "NTE-3",
        "OBR-13",
        "DG1-3.1",
        "DG1-3.2",
        "DG1-4",
        "AL1-3.1",
        "AL1-3.2",
        "AL1-5",
        "Z*",
    )

    def start(
        self, document: Message, mapping: MessageMapping
    ) -> tuple[Hl7v2Source, v2.Group, list[Issue]]:
        ordered, notes = v2.standard_order(document, mapping.structure)
        root, unplaced = v2.build_groups(document, mapping.structure, ordered)
        source = Hl7v2Source(v2.ReadTracker(), unplaced)
        problems = [
            Issue(note.severity, "structure", note.text, location=note.location)  # type: ignore[arg-type]
            for note in notes
        ]
        for group, name in v2.missing_required(root):
            where = source.describe(group) or group.name
            spec = next(
                (c for c in group.spec.children if isinstance(c, v2.GroupSpec) and c.name == name),
                None,
            )
            text = f"group {group.name} has no {name} {'segment' if spec is None else 'group'}"
            if spec is not None:
                text = _missing_group(document, group.name, spec) or text
            problems.append(Issue("error", "required", text, location=where))
        return source, root, problems

    def release(self, source: Any, scope: Any) -> None:
        """The tracker's ``resolved`` holds every ``Node`` a path gave, each node the
        tracker (a cycle through every node read: ~150 per lab message), and each group its
        parent and its groups: emptied, a message's parsed view goes when the translation
        returns, not at the collector's next passes, which walked it meanwhile (decision
        0100). The tracker's sets (read by ``unread``, done) are left as they are."""
        source.tracker.resolved.clear()
        if isinstance(scope, v2.Group):
            for group in scope.walk_list():
                group.groups = []

    def compile_ignore(self, entry: str, options: Any) -> str:
        """A segment (``PV1``), a field (``MSH-10``) or a component (``PID-11.4``): the
        component in every repetition of the field. A misspelt entry (``PID.11``) would
        silently ignore nothing, so it is a load error."""
        if not _CLINICAL.fullmatch(entry):
            raise ValueError(
                f"{entry!r} is not a segment (PV1), a field (MSH-10) or a component (PID-11.4)"
            )
        return entry

    def compile_clinical(self, entries: list[str]) -> frozenset[str]:
        """Fields (``OBX-5``), components (``DG1-3.2``), segments (``ZRS``: any of its
        fields) and ``Z*`` (every Z-segment's fields)."""
        for entry in entries:
            if entry != "Z*" and not _CLINICAL.fullmatch(entry):
                raise ValueError(
                    f"{entry!r} is not a segment (ZRS), a field (OBX-5), a component "
                    "(DG1-3.2) or Z*"
                )
        return frozenset(entries)

    def unread(
        self, document: Message, source: Any, mapping: MessageMapping
    ) -> list[tuple[str, str, bool]]:
        """Segments and fields present that no rule looked at, unless the mapping ignores them
        (``PV1``, ``MSH-7``), and in fields a rule read in part, the repetitions and
        components with a value that none read (``OBX[2]-5[2]``, ``PID[1]-11[1].3``); a
        segment the structure has no place for is always listed. A whole segment left
        unread is clinical (a warning) whatever it holds; a field or a repetition is when
        ``clinical:`` names it, a component of it, its segment, or ``Z*`` and it is in a
        Z-segment; a component when ``clinical:`` names it, its field or its segment."""
        clinical = mapping.clinical
        ignore, skips, with_parts, ignored, by_name = _unread_plan(tuple(mapping.ignore), clinical)
        tracker = source.tracker
        # found from the parts read, once (decision 0144); a field is read when its first
        # component is (a look-up in ``parts``) or it is in ``beyond`` (decision 0149: not
        # ``tracker.fields``, a tuple made and hashed per part read)
        parts, touched = tracker.parts, tracker.segments
        beyond = tracker.fields_beyond_first()
        out: list[tuple[str, str, bool]] = []
        unplaced_ids = {s.index for s in source.unplaced}
        for segment in document.segments:
            seg_name = segment.name
            if seg_name in ignore:
                continue
            left_out = ignored.get(seg_name)
            fields = segment.populated_fields()
            if left_out:
                kept: list[int] = []  # a loop, not a comprehension (a function made per call)
                for f in fields:
                    if f not in left_out:
                        kept.append(f)
                fields = kept
            index = segment.index
            if index in unplaced_ids or (index not in touched and fields):
                out.append((f"{seg_name}[{segment.occurrence}]", "segment", True))
                continue
            infos = by_name.get(seg_name)
            if infos is None:
                infos = _field_infos(by_name, seg_name, clinical, skips, with_parts)
            d = segment._d  # ``Segment.delimiters``, inline (a property: a call from C)
            written = segment._f  # ``Segment.raw``, inline: ``fields`` are populated ones
            for f in fields:
                info = infos.get(f)
                if info is None:
                    info = _field_info(infos, seg_name, f, clinical, skips, with_parts)
                name, flag, skip, listed, held_first = info
                if not skip and (index, f, 1, 1) not in parts and (index, f) not in beyond:
                    out.append((segment.location(f), "field", listed))
                    continue
                raw = written[f]
                if d.repetition not in raw and d.component not in raw:
                    # one value, read or not at all (_unread_parts' first case, inline)
                    if (index, f, 1, 1) not in parts and 1 not in skip:
                        out.append((segment.location(f), "field", flag or held_first))
                    continue
                for place, comps in _unread_parts(segment, f, tracker, skip):
                    held = False  # a loop, not any() over a generator (decision 0144)
                    for c in comps:
                        if f"{name}.{c}" in clinical:
                            held = True
                            break
                    out.append((place, "field", flag or held))
        return out


# what ``unread`` derives of one field of a segment name from the plan: its name (``PID-11``),
# whether ``clinical:`` names it or its segment (or ``Z*``), its ignored components, whether
# a field left unread whole is clinical, whether its component 1 is named clinical
_FieldInfo = tuple[str, bool, frozenset[int], bool, bool]
_NAMES_MAX = 512  # segment names kept per plan (a sender's Z-segments are not bounded)


def _field_infos(
    by_name: dict[str, dict[int, _FieldInfo]],
    seg_name: str,
    clinical: Any,
    skips: dict[str, set[int]],
    with_parts: frozenset[str],
) -> dict[int, _FieldInfo]:
    infos: dict[int, _FieldInfo] = {}
    if len(by_name) < _NAMES_MAX:
        by_name[seg_name] = infos
    return infos


def _field_info(
    infos: dict[int, _FieldInfo],
    seg_name: str,
    f: int,
    clinical: Any,
    skips: dict[str, set[int]],
    with_parts: frozenset[str],
) -> _FieldInfo:
    """A field's entry of ``_FieldInfo``, kept in ``infos`` (decision 0121)."""
    name = f"{seg_name}-{f}"
    whole = seg_name in clinical or ("Z*" in clinical and seg_name.startswith("Z"))
    flag = whole or name in clinical
    skip = frozenset(skips.get(name) or _NO_PARTS)
    info = (name, flag, skip, flag or name in with_parts, f"{name}.1" in clinical)
    if len(infos) < 256:
        infos[f] = info
    return info


_NO_PARTS: frozenset[int] = frozenset()

_UnreadPlan = tuple[
    frozenset[str],
    dict[str, set[int]],
    frozenset[str],
    dict[str, set[int]],
    dict[str, dict[int, "_FieldInfo"]],
]
_PLANS: dict[tuple[tuple[str, ...], Any], _UnreadPlan] = {}


def _unread_plan(ignore_entries: tuple[str, ...], clinical: Any) -> _UnreadPlan:
    """What ``unread`` derives from a mapping's ``ignore:`` and ``clinical:`` (the same for
    every message, so found once per distinct pair, decision 0112): the ignored names, the
    ignored components by field (``PID-11.4``: {"PID-11": {4}}), the fields ``clinical:``
    names a component of, the ignored fields by segment (``MSH-7``: {"MSH": {7}}); and what
    ``unread`` derives per field of a segment name (``_field_info``), filled as fields are
    met (decision 0121). Only that last one is added to by ``unread``."""
    key: Any = (ignore_entries, clinical)
    try:
        plan = _PLANS.get(key)
    except TypeError:  # a ``clinical`` made elsewhere (a test) may be a list
        plan, key = None, None
    if plan is not None:
        return plan
    ignore = frozenset(ignore_entries)
    skips: dict[str, set[int]] = {}
    for entry in ignore:
        if "." in entry:
            skips.setdefault(entry.partition(".")[0], set()).add(int(entry.rpartition(".")[2]))
    with_parts = frozenset(entry.partition(".")[0] for entry in clinical if "." in entry)
    # an entry is a field's name ``f"{segment}-{number}"`` exactly when it splits at its
    # last "-" into that segment and the number as ``str`` writes it (no sign, no zero first)
    ignored: dict[str, set[int]] = {"MSH": {1, 2}}
    for entry in ignore:
        segment_name, dash, number = entry.rpartition("-")
        if dash and number.isascii() and number.isdigit() and number[0] != "0":
            ignored.setdefault(segment_name, set()).add(int(number))
    plan = (ignore, skips, with_parts, ignored, {})
    if (
        key is not None and len(_PLANS) < 256
    ):  # one per message mapping in practice; bounded all the same
        _PLANS[key] = plan
    return plan


def _unread_parts(
    segment: Segment,
    field_no: int,
    tracker: v2.ReadTracker,
    skip: set[int] | frozenset[int] | None = None,
) -> list[tuple[str, tuple[int, ...]]]:
    """Places in a field that hold a value no rule read, each with the components holding
    it: a repetition none of whose components was read (``OBX[2]-5[2]``), or a component
    of a repetition read in part (``PID[1]-11[1].3``). Components in ``skip`` (ignored by
    the mapping, ``PID-11.4``) are neither reported nor needed for a repetition to count
    as read whole."""
    index, parts = segment.index, tracker.parts
    skip = skip or _NO_PARTS
    written = segment._f  # ``Segment.raw``, inline
    raw = written[field_no] if 0 < field_no < len(written) else ""
    d = segment._d  # ``Segment.delimiters``, inline
    if d.repetition not in raw and d.component not in raw:  # one value: read or not at all
        if (index, field_no, 1, 1) in parts or 1 in skip:
            return []
        return [(segment.location(field_no), (1,))]
    out: list[tuple[str, tuple[int, ...]]] = []
    for rep in range(1, segment.repetitions(field_no) + 1):
        filled = segment.filled_components(field_no, rep)
        held: list[int] = []  # loops, not comprehensions (a function made per call)
        unread: list[int] = []
        for c in filled:
            if c not in skip:
                held.append(c)
                if (index, field_no, rep, c) not in parts:
                    unread.append(c)
        if not unread:
            continue
        if len(unread) == len(filled):  # nothing of it read, nothing ignored: name it whole
            out.append((segment.location(field_no, rep), tuple(held)))
        else:
            for c in unread:  # a loop, not a generator (decision 0144)
                out.append((segment.location(field_no, rep, c), (c,)))
    return out


_CLINICAL = re.compile(r"[A-Z][A-Z0-9]{2}(-[1-9][0-9]*(\.[1-9][0-9]*)?)?")


def _check_each_targets(
    file: MappingFile,
    steps: list[dict[str, Any]],
    scope: v2.GroupSpec,
    key_path: tuple[Any, ...],
) -> None:
    """``each: OBSERVATIONS`` (a typo) would silently make nothing: a step's group or segment
    must be a part of the group the step runs in."""
    for i, step in enumerate(steps):
        target = step.get("each")
        if not isinstance(target, str):
            continue
        inner = scope
        if not target.startswith("="):
            child = next((c for c in scope.children if c.name == target), None)
            if child is None:
                parts = ", ".join(c.name for c in scope.children) or "nothing"
                raise file.fail(
                    f"each: {target!r} is not a group or segment of {scope.name} "
                    f"(its parts: {parts})",
                    (*key_path, i, "each"),
                )
            inner = child if isinstance(child, v2.GroupSpec) else v2.GroupSpec(child.name, [])
        _check_each_targets(file, step.get("do") or [], inner, (*key_path, i, "do"))


FORMAT = Hl7v2Format()


def _missing_group(document: Message, parent: str, spec: v2.GroupSpec) -> str | None:
    """What to tell the sender when a required group is absent because the segment that
    starts it (its anchor) is not in the message at all: an ORU^R01 without PID has no
    PATIENT_RESULT group, but the sender has to hear that it names no patient."""
    anchor = spec.anchor()
    if anchor is None or document.segments_named(anchor):
        return None  # the anchor is there: the group is missing for another reason
    if anchor == "PID":
        carried = "its results" if "OBX" in spec.subtree_names() else "what it carries"
        return (
            "the message names no patient (no PID segment), so "
            f"{carried} cannot be attributed to anyone (group {parent} has no {spec.name} "
            "group, which starts with PID)"
        )
    return (
        f"group {parent} has no {spec.name} group: the message has no {anchor} segment, "
        "which starts it"
    )

"""HL7 v2 as a source for mappings: message structure (groups), paths, and what was read.

A message mapping declares the message structure as data (``structure:``); ``build_groups``
sorts the segments of one message into nested group instances the way HAPI and the v2
standard do: a segment goes into the current group at or after the current position, starts
a new repetition of a repeating group it can begin, or closes the group and goes to the
parent. Segments that fit nowhere (Z-segments, vendor extras) are kept as ``unplaced`` and
reported, never dropped silently.

Paths: ``PID-3`` (field, first repetition), ``PID-3[2]`` (second repetition), ``PID-3.4.2``
(component 4, subcomponent 2). A path names a segment; it is looked up in the current group,
then in the enclosing groups (so ``PID-3`` works inside an OBSERVATION).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from adapter.hl7v2 import Message, Segment

_PATH = re.compile(
    r"^(?P<seg>[A-Z][A-Z0-9]{2})(?:\[(?P<occ>\d+)\])?"
    r"(?:-(?P<field>\d+)(?:\[(?P<rep>\d+|\*)\])?(?:\.(?P<comp>\d+)(?:\.(?P<sub>\d+))?)?)?$"
)


@dataclass(frozen=True, slots=True)
class Hl7Path:
    segment: str
    field: int | None = None
    rep: int | None = None  # None: the first repetition (or all, when iterated)
    comp: int | None = None
    sub: int | None = None

    def __str__(self) -> str:
        out = self.segment
        if self.field is not None:
            out += f"-{self.field}"
            if self.rep is not None:
                out += f"[{self.rep}]"
            if self.comp is not None:
                out += f".{self.comp}"
                if self.sub is not None:
                    out += f".{self.sub}"
        return out


def compile_path(text: str) -> Hl7Path:
    match = _PATH.match(text)
    if not match:
        raise ValueError(
            f"{text!r} is not an HL7 v2 path "
            "(SEG-field[rep].component.subcomponent, e.g. PID-3[2].1)"
        )
    if match.group("occ"):
        raise ValueError(f"{text!r}: segment occurrences are chosen by groups and 'each', not [n]")
    rep = match.group("rep")
    return Hl7Path(
        segment=match.group("seg"),
        field=int(match.group("field")) if match.group("field") else None,
        rep=None if rep in (None, "*") else int(rep),
        comp=int(match.group("comp")) if match.group("comp") else None,
        sub=int(match.group("sub")) if match.group("sub") else None,
    )


# -- reading with a record of what was read ------------------------------------------------


@dataclass(slots=True)
class ReadTracker:
    """What a mapping read: the segments it looked at (``segments``), the fields whose
    value it read at least in part (``fields``: segment index, field) and, to the
    component, which parts (``parts``: segment index, field, repetition, component).

    A part is read when a rule's path names it (``PID-11`` names the first repetition's
    first component, ``PID-11[2].3`` that component; an iterated ``PID-3`` each repetition)
    or its value is read (``Node.text``, also through ``child``). A rule on ``PID-11``
    that reads the field as text so leaves an address in ``PID-11[1].3`` or a second
    repetition ``PID-11[2]`` unread, and it is reported (decision 0016). Below the
    component nothing is told apart: reading a component reads all its subcomponents."""

    fields: set[tuple[int, int]] = field(default_factory=set)
    segments: set[int] = field(default_factory=set)
    parts: set[tuple[int, int, int, int]] = field(default_factory=set)

    def mark(self, segment: Segment, field_no: int | None) -> None:
        """The segment was looked at (its presence, or a path into it)."""
        self.segments.add(segment.index)

    def read(self, segment: Segment, field_no: int, rep: int, comp: int) -> None:
        index = segment.index
        self.fields.add((index, field_no))
        self.parts.add((index, field_no, rep, comp))


class Node:
    """A position in one segment: a field repetition, a component or a subcomponent."""

    __slots__ = ("comp", "field", "rep", "segment", "sub", "tracker")

    def __init__(
        self,
        segment: Segment,
        field_no: int,
        rep: int = 1,
        comp: int | None = None,
        sub: int | None = None,
        tracker: ReadTracker | None = None,
    ) -> None:
        self.segment = segment
        self.field = field_no
        self.rep = rep
        self.comp = comp
        self.sub = sub
        self.tracker = tracker

    @property
    def text(self) -> str:
        """The value as text: a field or component reads as its first component/subcomponent
        (and only that part counts as read)."""
        comp = self.comp or 1
        if self.tracker is not None:
            self.tracker.read(self.segment, self.field, self.rep, comp)
        return self.segment.get(self.field, self.rep, comp, self.sub or 1)

    def repetition_texts(self) -> list[str]:
        """The first component of every repetition of the field (each counts as read)."""
        segment, field_no = self.segment, self.field
        reps = range(1, segment.repetitions(field_no) + 1)
        if self.tracker is not None:
            for rep in reps:
                self.tracker.read(segment, field_no, rep, 1)
        return [segment.get(field_no, rep) for rep in reps]

    def is_empty(self) -> bool:
        segment = self.segment
        if self.comp is None:
            count = len(segment.components(self.field, self.rep))
            return not any(
                any(segment.subcomponents(self.field, self.rep, c)) for c in range(1, count + 1)
            )
        if self.sub is None:
            return not any(segment.subcomponents(self.field, self.rep, self.comp))
        return not self.text

    @property
    def location(self) -> str:
        return self.segment.location(
            self.field, self.rep if self.rep != 1 or self.comp else None, self.comp, self.sub
        )

    def child(self, index: int) -> Node:
        if self.comp is None:
            return Node(self.segment, self.field, self.rep, index, tracker=self.tracker)
        if self.sub is None:
            return Node(self.segment, self.field, self.rep, self.comp, index, self.tracker)
        raise ValueError(f"{self.location} has no parts below subcomponent")

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"<Node {self.location}>"


# -- groups --------------------------------------------------------------------------------


@dataclass(slots=True)
class SegmentSpec:
    name: str
    repeat: bool = False
    required: bool = False


@dataclass(slots=True)
class GroupSpec:
    name: str
    children: list[SegmentSpec | GroupSpec]
    repeat: bool = False
    required: bool = False

    def first_names(self) -> set[str]:
        """Segment names that can begin this group (up to and including its first required part)."""
        names: set[str] = set()
        for child in self.children:
            names |= {child.name} if isinstance(child, SegmentSpec) else child.first_names()
            if child.required:
                break
        return names


def compile_structure(items: list[Any], name: str = "MESSAGE") -> GroupSpec:
    """``["MSH!", "NTE*", {"group": "PATIENT_RESULT", "repeat": True, "items": [...]}]``."""
    children: list[SegmentSpec | GroupSpec] = []
    for item in items:
        if isinstance(item, str):
            match = re.fullmatch(r"([A-Z][A-Z0-9]{2})([!*+?]?)", item)
            if not match:
                raise ValueError(f"{item!r} is not a segment (e.g. OBX, NTE*, PID!)")
            flag = match.group(2)
            children.append(
                SegmentSpec(
                    match.group(1), repeat=flag in "*+" and flag != "", required=flag in ("!", "+")
                )
            )
        else:
            children.append(compile_structure(item["items"], item["group"]))
            children[-1].repeat = bool(item.get("repeat", False))  # type: ignore[union-attr]
            children[-1].required = bool(item.get("required", False))
    return GroupSpec(name, children, required=True)


@dataclass(eq=False, slots=True)
class Group:
    """One instance of a group in one message."""

    spec: GroupSpec
    parent: Group | None
    segments: list[Segment] = field(default_factory=list)
    groups: list[Group] = field(default_factory=list)
    position: int = 0  # index in spec.children reached so far

    @property
    def name(self) -> str:
        return self.spec.name

    def find_segment(self, name: str) -> Segment | None:
        group: Group | None = self
        while group is not None:
            for segment in group.segments:
                if segment.name == name:
                    return segment
            group = group.parent
        return None

    def segments_named(self, name: str) -> list[Segment]:
        return [s for s in self.segments if s.name == name]

    def groups_named(self, name: str) -> list[Group]:
        return [g for g in self.groups if g.name == name]

    def walk(self) -> Iterator[Group]:
        yield self
        for group in self.groups:
            yield from group.walk()

    @property
    def first_segment(self) -> Segment | None:
        if self.segments:
            return min(self.segments, key=lambda s: s.index)
        firsts = [g.first_segment for g in self.groups]
        present = [s for s in firsts if s is not None]
        return min(present, key=lambda s: s.index) if present else None


def _place(group: Group, segment: Segment) -> Group | None:
    """Put ``segment`` into ``group`` at or after its position; return the group it went into."""
    spec = group.spec
    for index in range(group.position, len(spec.children)):
        child = spec.children[index]
        if isinstance(child, SegmentSpec):
            if child.name != segment.name:
                continue
            already = index == group.position and any(
                s.name == segment.name for s in group.segments
            )
            if already and not child.repeat:
                continue
            group.segments.append(segment)
            group.position = index
            return group
        if segment.name in child.first_names():
            if not child.repeat and any(g.spec is child for g in group.groups):
                continue  # a group that does not repeat is not begun a second time
            sub = Group(child, group)
            group.groups.append(sub)
            group.position = index
            return _place(sub, segment)
    return None


def build_groups(message: Message, structure: GroupSpec) -> tuple[Group, list[Segment]]:
    """Sort the message's segments into groups; return the root and the unplaced segments."""
    root = Group(structure, None)
    current = root
    unplaced: list[Segment] = []
    for segment in message.segments:
        group: Group | None = current
        placed: Group | None = None
        while group is not None:
            placed = _place(group, segment)
            if placed is not None:
                break
            # a repeating group that this segment can begin again: a new repetition
            if (
                group.spec.repeat
                and group.parent is not None
                and segment.name in group.spec.first_names()
            ):
                sibling = Group(group.spec, group.parent)
                group.parent.groups.append(sibling)
                placed = _place(sibling, segment)
                if placed is not None:
                    break
            group = group.parent
        if placed is None:
            unplaced.append(segment)  # Z-segments and strays: kept and reported
            continue
        current = placed
    return root, unplaced


def missing_required(root: Group) -> list[tuple[Group, str]]:
    """Required segments and groups absent from a group instance: (group, name of the part).
    Parts of a group that is absent itself are not listed (only its absence, if required)."""
    out: list[tuple[Group, str]] = []
    for group in root.walk():
        for child in group.spec.children:
            if not child.required:
                continue
            if isinstance(child, SegmentSpec):
                present = any(s.name == child.name for s in group.segments)
            else:
                present = any(g.spec is child for g in group.groups)
            if not present:
                out.append((group, child.name))
    return out


# -- resolving paths in a scope ---------------------------------------------------------------


def resolve(path: Hl7Path, scope: Group, tracker: ReadTracker) -> Node | Segment | None:
    segment = scope.find_segment(path.segment)
    if segment is None:
        return None
    tracker.mark(segment, path.field)
    if path.field is None:
        return segment
    # the part the path names counts as read once a rule consults it (a fallback of
    # ``first`` not taken is resolved only when it held nothing else); parts below it when
    # they are read
    tracker.read(segment, path.field, path.rep or 1, path.comp or 1)
    return Node(segment, path.field, path.rep or 1, path.comp, path.sub, tracker)


def iterate(path: Hl7Path, scope: Group, tracker: ReadTracker) -> list[Node]:
    """Every repetition of a field (``PID-3``) or the one named (``PID-3[2]``)."""
    segment = scope.find_segment(path.segment)
    if segment is None or path.field is None:
        return []
    tracker.mark(segment, path.field)
    reps = [path.rep] if path.rep else range(1, segment.repetitions(path.field) + 1)
    nodes = [Node(segment, path.field, rep, path.comp, path.sub, tracker) for rep in reps]
    present = [n for n in nodes if not n.is_empty()]
    for node in present:
        tracker.read(segment, path.field, node.rep, path.comp or 1)
    return present


def segment_scope(segment: Segment, parent: Group) -> Group:
    """A one-segment scope for ``each: NTE``: paths reach this segment first, then the parent."""
    return Group(GroupSpec(segment.name, []), parent, segments=[segment])

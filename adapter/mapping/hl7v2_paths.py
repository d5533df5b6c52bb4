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

import dataclasses
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from operator import attrgetter, itemgetter
from typing import Any

from adapter.hl7v2 import Message, Segment
from adapter.mapping.values import (
    NUMBERED_PARTS,
    TEXT_ALWAYS,
    TEXT_DECIDES,
    TEXT_FIRST,
    TEXT_READERS,
)

_PATH = re.compile(
    r"^(?P<seg>[A-Z][A-Z0-9]{2})(?:\[(?P<occ>\d+)\])?"
    r"(?:-(?P<field>\d+)(?:\[(?P<rep>\d+|\*)\])?(?:\.(?P<comp>\d+)(?:\.(?P<sub>\d+))?)?)?$"
)


_PATH_SERIALS = itertools.count(1)


@dataclass(frozen=True, slots=True)
class Hl7Path:
    segment: str
    field: int | None = None
    rep: int | None = None  # None: the first repetition (or all, when iterated)
    comp: int | None = None
    sub: int | None = None
    # what ``read_path`` asks of the path at every read, found once (decision 0144): the
    # repetition and component as read (``rep or 1``, ``comp or 1``), and whether the path
    # names a field's first repetition and first subcomponent (a flat segment's value is
    # then read at once)
    _rep1: int = dataclasses.field(default=1, init=False, repr=False, compare=False)
    _comp1: int = dataclasses.field(default=1, init=False, repr=False, compare=False)
    _simple: bool = dataclasses.field(default=False, init=False, repr=False, compare=False)
    # this path object's part of ``read_path``'s memo key (``_memo + segment index``): a
    # serial number times 2**32, one per object as ``id(path)`` was (decision 0149: an int
    # key, not a tuple made and hashed per read)
    _memo: int = dataclasses.field(default=0, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_memo", next(_PATH_SERIALS) << 32)
        rep, sub, field_no = self.rep, self.sub, self.field
        object.__setattr__(self, "_rep1", rep or 1)
        object.__setattr__(self, "_comp1", self.comp or 1)
        simple = field_no is not None and field_no > 0 and (rep or 1) == 1 and (sub or 1) == 1
        object.__setattr__(self, "_simple", simple)

    def __reduce__(self) -> tuple[Any, ...]:
        # a copy or an unpickled path is made by the constructor: a serial of its own
        return (Hl7Path, (self.segment, self.field, self.rep, self.comp, self.sub))

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


# a path read again in the same scope gives what it gave (``read_path``'s memo) and marks
# nothing more: generated code may keep the first read's value (closures._Reads, 0144)
Hl7Path.same_on_reread = True  # type: ignore[attr-defined]

_COMPILED: dict[str, Hl7Path] = {}  # one object per path text (``resolve`` keeps by id)


def compile_path(text: str) -> Hl7Path:
    compiled = _COMPILED.get(text)
    if compiled is None:
        compiled = _COMPILED[text] = _compile_path(text)
    return compiled


def _compile_path(text: str) -> Hl7Path:
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


_INDEX_AND_FIELD = itemgetter(0, 1)  # (segment index, field) of a part read
_SEGMENT_OF_PART = itemgetter(0)


class ReadTracker:
    """What a mapping read: the segments it looked at (``segments``), the fields whose
    value it read at least in part (``fields``: segment index, field) and, to the
    component, which parts (``parts``: segment index, field, repetition, component).

    A part is read when a rule's path names it (``PID-11`` names the first repetition's
    first component, ``PID-11[2].3`` that component; an iterated ``PID-3`` each repetition)
    or its value is read (``Node.text``, also through ``child``). A rule on ``PID-11``
    that reads the field as text so leaves an address in ``PID-11[1].3`` or a second
    repetition ``PID-11[2]`` unread, and it is reported (decision 0016). Below the
    component nothing is told apart: reading a component reads all its subcomponents.

    Only ``parts`` and ``marked`` (a segment looked at without a part of it read: its
    presence, a whole segment, ``each`` over it) are written as the mapping reads; a part
    read is its field read and its segment looked at, so ``fields`` and ``segments`` are
    found from them when asked (in C, once, by the unread report; decision 0144)."""

    __slots__ = ("marked", "parts", "resolved")

    def __init__(self) -> None:
        self.parts: set[tuple[int, int, int, int]] = set()
        self.marked: set[int] = set()
        # what ``read_path`` gave: the path's ``_memo`` + the segment index -> the ReadNode
        # (one serial number per path object, never reused; decision 0149)
        self.resolved: dict[int, Any] = {}

    @property
    def fields(self) -> set[tuple[int, int]]:
        """(segment index, field) of every field read at least in part (a new set)."""
        return set(map(_INDEX_AND_FIELD, self.parts))

    def fields_beyond_first(self) -> set[tuple[int, int]]:
        """(segment index, field) of every field read in a part other than its first
        repetition's first component (a new set): a field is read (in ``fields``) exactly
        when its part (index, field, 1, 1) was read or it is in this set. Found from the
        parts that are not (…, 1, 1) only, for the unread report (decision 0149): most parts
        read are, and a field so read is told by one look-up in ``parts``."""
        found: set[tuple[int, int]] = set()
        for index, field_no, rep, comp in self.parts:
            if rep != 1 or comp != 1:
                found.add((index, field_no))
        return found

    @property
    def segments(self) -> set[int]:
        """The indexes of the segments looked at (a new set)."""
        return self.marked.union(map(_SEGMENT_OF_PART, self.parts))

    def mark(self, segment: Segment, field_no: int | None) -> None:
        """The segment was looked at (its presence, or a path into it)."""
        self.marked.add(segment.index)

    def read(self, segment: Segment, field_no: int, rep: int, comp: int) -> None:
        self.parts.add((segment.index, field_no, rep, comp))

    def __repr__(self) -> str:
        return f"ReadTracker(segments={self.segments}, parts={self.parts})"


class Node:
    """A position in one segment: a field repetition, a component or a subcomponent."""

    # _text: the value's text once read (the tracker's sets only grow, so a second read
    # would add nothing to them and give the same text); _empty: is_empty() once asked (it
    # reads nothing); _children: the nodes ``child`` made, each made once
    __slots__ = (
        "_children",
        "_empty",
        "_text",
        "comp",
        "field",
        "rep",
        "segment",
        "sub",
        "tracker",
    )

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
        self._text: str | None = None
        self._empty: bool | None = None
        self._children: dict[int, Node] | None = None

    @property
    def text(self) -> str:
        """The value as text: a field or component reads as its first component/subcomponent
        (and only that part counts as read)."""
        known = self._text
        if known is not None:
            return known
        comp = self.comp or 1
        segment, field_no, rep, tracker = self.segment, self.field, self.rep, self.tracker
        if tracker is not None:  # ReadTracker.read, inline: read for every value taken
            tracker.parts.add((segment.index, field_no, rep, comp))
        sub = self.sub
        if rep == 1 and (sub is None or sub == 1) and field_no > 0:
            # the field's first components, split and unescaped once (decision 0144)
            comps = segment._c1.get(field_no)
            if comps is None:
                comps = segment.first_components(field_no)
            known = self._text = comps[comp - 1] if 0 < comp <= len(comps) else ""
        else:
            known = self._text = segment.get(field_no, rep, comp, sub or 1)
        return known

    def repetition_texts(self) -> list[str]:
        """The first component of every repetition of the field (each counts as read)."""
        segment, field_no = self.segment, self.field
        reps = range(1, segment.repetitions(field_no) + 1)
        if self.tracker is not None:
            for rep in reps:
                self.tracker.read(segment, field_no, rep, 1)
        return [segment.get(field_no, rep) for rep in reps]

    def is_empty(self) -> bool:
        empty = self._empty
        if empty is None:
            if self.sub is None:  # no leaf of the repetition (or component) holds anything
                empty = self.segment.blank(self.field, self.rep, self.comp)
            else:
                empty = not self.text
            self._empty = empty
        return empty

    @property
    def location(self) -> str:
        return self.segment.location(
            self.field, self.rep if self.rep != 1 or self.comp else None, self.comp, self.sub
        )

    def child(self, index: int) -> Node:
        children = self._children
        if children is None:
            children = self._children = {}
        else:
            made = children.get(index)
            if made is not None:
                return made
        # ``Node(segment, field, rep, comp, sub, tracker)`` without its ``__init__`` call (a
        # component of a field, a subcomponent of a component; decision 0144)
        made = _new_node(Node)
        if self.comp is None:
            made.comp = index
            made.sub = None
        elif self.sub is None:
            made.comp = self.comp
            made.sub = index
        else:
            raise ValueError(f"{self.location} has no parts below subcomponent")
        made.segment = self.segment
        made.field = self.field
        made.rep = self.rep
        made.tracker = self.tracker
        made._text = None
        made._empty = None
        made._children = None
        children[index] = made
        return made

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"<Node {self.location}>"


class ReadNode(Node):
    """A ``Node`` made where its part is marked read (``resolve``, ``iterate``: what reading
    its text would mark), so its text is taken at once and kept as a plain attribute (the
    slot shadows ``Node.text``): the values helpers read it without a property call."""

    __slots__ = ("text",)

    def __init__(
        self,
        segment: Segment,
        field_no: int,
        rep: int,
        comp: int | None,
        sub: int | None,
        tracker: ReadTracker,
    ) -> None:
        self.segment = segment
        self.field = field_no
        self.rep = rep
        self.comp = comp
        self.sub = sub
        self.tracker = tracker
        self._text = self.text = segment.get(field_no, rep, comp or 1, sub or 1)  # type: ignore[misc]
        self._empty = None
        self._children = None


_new_node = object.__new__  # a ReadNode made by ``read_path`` without its ``__init__`` call

# its text is a leaf of the part ``is_empty`` looks at (``Segment.blank``): not blank, not empty
TEXT_DECIDES.add(ReadNode)
# ``@cx.1``: component 1 of the position (``child``); a Node is never a dict or a list
NUMBERED_PARTS.update((Node, ReadNode))
# a leaf holds its text (Segment.get), so a text not blank means not ``is_empty``
TEXT_FIRST.add(Node)
# ``Node.text`` and a ReadNode's ``text`` are always a str (Segment.get's)
TEXT_ALWAYS.update((Node, ReadNode))
# ``Node.text`` is a property: its function, for the readers to call at once
TEXT_READERS[Node] = Node.text.fget


# -- groups --------------------------------------------------------------------------------


@dataclass(slots=True)
class SegmentSpec:
    name: str
    repeat: bool = False
    required: bool = False


@dataclass(frozen=True, slots=True)
class Trailing:
    """A segment of a group that senders also write later than the structure puts it
    (``trailing: {ORC: [ORC-2=OBR-2, ORC-3=OBR-3]}``): after the group's anchor (its first
    required segment, OBR) and the anchor's notes and results. ``same_order`` pairs the
    fields (first component) that, both valued, name the same order."""

    name: str
    same_order: tuple[tuple[int, int], ...] = ()


@dataclass(slots=True)
class GroupSpec:
    name: str
    children: list[SegmentSpec | GroupSpec]
    repeat: bool = False
    required: bool = False
    trailing: tuple[Trailing, ...] = ()
    # what grouping asks of the spec for every message, found once when first asked (the
    # spec is complete by then: ``compile_structure`` returns it whole; decision 0139)
    _first: frozenset[str] | None = field(default=None, repr=False, compare=False)
    _plan: tuple[_TrailingPlan, ...] | None = field(default=None, repr=False, compare=False)

    def anchor(self) -> str | None:
        """The group's first required segment (OBR of an ORDER_OBSERVATION)."""
        for child in self.children:
            if isinstance(child, SegmentSpec) and child.required:
                return child.name
        return None

    def subtree_names(self) -> set[str]:
        names: set[str] = set()
        for child in self.children:
            names |= {child.name} if isinstance(child, SegmentSpec) else child.subtree_names()
        return names

    def walk_specs(self) -> Iterator[GroupSpec]:
        yield self
        for child in self.children:
            if isinstance(child, GroupSpec):
                yield from child.walk_specs()

    def first_names(self) -> frozenset[str]:
        """Segment names that can begin this group (up to and including its first required
        part), found once."""
        found = self._first
        if found is None:
            found = self._first = frozenset(self._first_names())
        return found

    def _first_names(self) -> set[str]:
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
            unknown = set(item) - {"group", "items", "repeat", "required", "trailing"}
            if unknown:
                raise ValueError(f"group {item.get('group')!r}: unknown keys {sorted(unknown)}")
            group = compile_structure(item["items"], item["group"])
            group.repeat = bool(item.get("repeat", False))
            group.required = bool(item.get("required", False))
            group.trailing = _compile_trailing(group, item.get("trailing") or {})
            children.append(group)
    return GroupSpec(name, children, required=True)


_SAME_ORDER = re.compile(r"([A-Z][A-Z0-9]{2})-(\d+)=([A-Z][A-Z0-9]{2})-(\d+)")


def _compile_trailing(group: GroupSpec, data: Any) -> tuple[Trailing, ...]:
    """``{ORC: [ORC-2=OBR-2, ORC-3=OBR-3]}``: ORC may also trail the anchor (OBR)."""
    if not isinstance(data, dict):
        raise ValueError(f"group {group.name}: trailing is a map {{SEGMENT: [SEG-n=ANCHOR-m]}}")
    anchor = group.anchor()
    own = {c.name for c in group.children if isinstance(c, SegmentSpec)}
    out = []
    for name, pairs in data.items():
        if anchor is None:
            raise ValueError(f"group {group.name}: trailing needs a required segment to follow")
        if name not in own or name == anchor:
            raise ValueError(
                f"group {group.name}: trailing {name!r} is not an optional segment of the group"
            )
        same: list[tuple[int, int]] = []
        for pair in pairs or []:
            match = _SAME_ORDER.fullmatch(str(pair))
            if not match or match.group(1) != name or match.group(3) != anchor:
                raise ValueError(
                    f"group {group.name}: trailing {name}: {pair!r} is not "
                    f"{name}-n={anchor}-m (fields naming the same order)"
                )
            same.append((int(match.group(2)), int(match.group(4))))
        out.append(Trailing(name, tuple(same)))
    return tuple(out)


_UNKNOWN = object()


@dataclass(eq=False, slots=True)
class Group:
    """One instance of a group in one message."""

    spec: GroupSpec
    parent: Group | None
    segments: list[Segment] = field(default_factory=list)
    groups: list[Group] = field(default_factory=list)
    position: int = 0  # index in spec.children reached so far
    # find_segment's answers by name: asked once the groups are built (paths are resolved
    # after build_groups), when the segments of a group and its parents no longer change
    found: dict[str, Segment | None] = field(default_factory=dict, repr=False)

    @property
    def name(self) -> str:
        return self.spec.name

    def find_segment(self, name: str) -> Segment | None:
        known = self.found.get(name, _UNKNOWN)
        if known is not _UNKNOWN:
            return known  # type: ignore[return-value]
        group: Group | None = self
        while group is not None:
            for segment in group.segments:
                if segment.name == name:
                    self.found[name] = segment
                    return segment
            group = group.parent
        self.found[name] = None
        return None

    # loops, not comprehensions, in what runs per message: a comprehension or a generator
    # is a function made per call (decision 0126)
    def segments_named(self, name: str) -> list[Segment]:
        out = []
        for s in self.segments:
            if s.name == name:
                out.append(s)
        return out

    def groups_named(self, name: str) -> list[Group]:
        out = []
        for g in self.groups:
            if g.spec.name == name:
                out.append(g)
        return out

    def walk(self) -> Iterator[Group]:
        yield self
        for group in self.groups:
            yield from group.walk()

    def walk_list(self) -> list[Group]:
        """``walk``'s groups (this one, then each group's in order, depth first) as a list:
        made in one loop, where the nested generators resumed once per group and level,
        each resumption a new interpreter loop (decision 0144)."""
        out: list[Group] = []
        stack = [self]
        while stack:
            group = stack.pop()
            out.append(group)
            children = group.groups
            if children:
                stack.extend(reversed(children))
        return out

    @property
    def first_segment(self) -> Segment | None:
        if self.segments:
            return min(self.segments, key=_INDEX)
        present = []
        for g in self.groups:
            s = g.first_segment
            if s is not None:
                present.append(s)
        return min(present, key=_INDEX) if present else None


_INDEX = attrgetter("index")  # a segment's position: the key of ``min`` (no lambda per call)


def _place(group: Group, segment: Segment) -> Group | None:
    """Put ``segment`` into ``group`` at or after its position; return the group it went into."""
    spec = group.spec
    for index in range(group.position, len(spec.children)):
        child = spec.children[index]
        if isinstance(child, SegmentSpec):
            if child.name != segment.name:
                continue
            already = False
            if index == group.position:
                for s in group.segments:
                    if s.name == segment.name:
                        already = True
                        break
            if already and not child.repeat:
                continue
            group.segments.append(segment)
            group.position = index
            return group
        if segment.name in child.first_names():
            if not child.repeat:  # a group that does not repeat is not begun a second time
                begun = False  # a loop, not any() over a generator (decision 0149)
                for g in group.groups:
                    if g.spec is child:
                        begun = True
                        break
                if begun:
                    continue
            sub = _new_group(child, group)
            group.groups.append(sub)
            group.position = index
            return _place(sub, segment)
    return None


def build_groups(
    message: Message, structure: GroupSpec, segments: list[Segment] | None = None
) -> tuple[Group, list[Segment]]:
    """Sort the message's segments (or ``segments``, the message's in another order: see
    ``standard_order``) into groups; return the root and the unplaced segments."""
    root = _new_group(structure, None)
    current = root
    unplaced: list[Segment] = []
    for segment in message.segments if segments is None else segments:
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
                sibling = _new_group(group.spec, group.parent)
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


# -- segments written after their anchor (ORC after OBR) --------------------------------------


@dataclass(frozen=True, slots=True)
class OrderNote:
    """What ``standard_order`` did or could not do with one trailing segment."""

    severity: str  # "information": moved; "error": cannot be paired
    location: str
    text: str


def standard_order(
    message: Message, structure: GroupSpec
) -> tuple[list[Segment] | None, list[OrderNote]]:
    """The message's segments with each trailing segment (``trailing:``: an ORC written
    after its OBR, or after the OBR's notes and results, as many LIS do) moved to the place
    the structure gives it in its anchor's group, so the message is grouped as if written in
    the standard order (decision 0041); ``None`` when nothing moves. Which OBR an ORC
    belongs to:

    - its order numbers (``same_order``: ORC-2 / ORC-3 against OBR-2 / OBR-3, both valued)
      name the OBR before it and not the one after: that one (trails); the one after and
      not the one before: the one after (leads, as the standard writes it; not moved);
    - otherwise by the message's style: it trails when the message writes an OBR before
      any ORC and an ORC after its last OBR (no standard reading would pair that ORC),
      else it is read as written.

    An ORC that trails is never paired with an OBR that already has its ORC, nor across a
    segment outside the group (a PID of the next patient, an SPM of the next specimen in
    OUL^R22); it is an error then (the message is refused, the place named), never a
    guess."""
    segments = list(message.segments)
    notes: list[OrderNote] = []
    moved = False
    for spec, anchor, trailing, inside, before in _trailing_plan(structure):
        result = _move_trailing(segments, spec, anchor, trailing, notes, inside, before)
        if result is not None:
            segments = result
            moved = True
    return (segments if moved else None), notes


# a group spec, its anchor, one of its trailing segments, the names of its subtree, whether
# the standard puts the trailing segment before the anchor
_TrailingPlan = tuple["GroupSpec", str, Trailing, frozenset[str], bool]


def _trailing_plan(structure: GroupSpec) -> tuple[_TrailingPlan, ...]:
    """What ``standard_order`` looks at of the structure: the same for every message, so
    found once per structure (decision 0139)."""
    plan = structure._plan
    if plan is None:
        out: list[_TrailingPlan] = []
        for spec in structure.walk_specs():
            anchor = spec.anchor()
            if anchor is None:
                continue
            names = [c.name for c in spec.children]
            for trailing in spec.trailing:
                before = names.index(trailing.name) < names.index(anchor)
                out.append((spec, anchor, trailing, frozenset(spec.subtree_names()), before))
        plan = structure._plan = tuple(out)
    return plan


def _same_order(segment: Segment, anchor: Segment, pairs: tuple[tuple[int, int], ...]) -> str:
    """'same', 'differ' or 'unknown' (no pair valued on both)."""
    verdict = "unknown"
    for own, theirs in pairs:
        a, b = segment.get(own).strip(), anchor.get(theirs).strip()
        if a and b:
            if a == b:
                return "same"
            verdict = "differ"
    return verdict


def _move_trailing(
    segments: list[Segment],
    spec: GroupSpec,
    anchor: str,
    trailing: Trailing,
    notes: list[OrderNote],
    inside: frozenset[str],
    before: bool,
) -> list[Segment] | None:
    name = trailing.name
    marks = [s for s in segments if s.name in (name, anchor)]
    for s in marks:  # a loop, not any() over a generator (decision 0149)
        if s.name == name:
            break
    else:
        return None
    trailing_style = marks[0].name == anchor and marks[-1].name == name

    def neighbour(position: int, step: int) -> Segment | None:
        """The anchor before (step -1) or after (+1) position, within the group's segments."""
        index = position + step
        while 0 <= index < len(segments):
            segment = segments[index]
            if segment.name == anchor:
                return segment
            if segment.name not in inside:
                return None
            index += step
        return None

    owner: dict[int, Segment] = {}  # trailing segment index -> its anchor
    has: dict[int, Segment] = {}  # anchor index -> the segment it has where the standard says
    for position, segment in enumerate(segments):
        if segment.name != name:
            continue
        prev, nxt = neighbour(position, -1), neighbour(position, +1)
        if not before and prev is not None and segments[position - 1] is prev:
            has[prev.index] = segment  # right after its OBR: where the standard puts it
            continue
        p = _same_order(segment, prev, trailing.same_order) if prev is not None else "none"
        n = _same_order(segment, nxt, trailing.same_order) if nxt is not None else "none"
        where = f"{name}[{segment.occurrence}]"
        if p == "same" and n != "same":
            trails = True
        elif n == "same" and p != "same":
            trails = False
        elif trailing_style and p == "differ" and n in ("differ", "none"):
            notes.append(
                OrderNote(
                    "error",
                    where,
                    f"{where}'s order numbers name neither the {anchor} before it nor the one "
                    "after it: which order it belongs to cannot be told",
                )
            )
            continue
        else:
            trails = prev is not None and p != "differ" and (trailing_style or not before)
        if not trails:
            if before and nxt is not None:
                has[nxt.index] = segment
            continue  # read as written (before its OBR, as the standard writes it)
        assert prev is not None
        other = has.get(prev.index) or next(
            (s for s in segments if owner.get(s.index) is prev), None
        )
        if other is not None:
            notes.append(
                OrderNote(
                    "error",
                    where,
                    f"{where} follows {anchor}[{prev.occurrence}], which already has "
                    f"{name}[{other.occurrence}]: which order it belongs to cannot be told",
                )
            )
            continue
        owner[segment.index] = prev
    if not owner:
        return None
    for segment in segments:
        if segment.index in owner:
            prev = owner[segment.index]
            where = "before" if before else "right after"
            notes.append(
                OrderNote(
                    "information",
                    f"{name}[{segment.occurrence}]",
                    f"{name}[{segment.occurrence}] is written after its {anchor}"
                    f"[{prev.occurrence}] (the standard puts {name} {where} {anchor} in "
                    f"{spec.name}); read as that order's {name}",
                )
            )
    out = [s for s in segments if s.index not in owner]
    for segment_index, prev in sorted(owner.items()):
        moving = next(s for s in segments if s.index == segment_index)
        at = out.index(prev)
        out.insert(at if before else at + 1, moving)
    return out


def missing_required(root: Group) -> list[tuple[Group, str]]:
    """Required segments and groups absent from a group instance: (group, name of the part).
    Parts of a group that is absent itself are not listed (only its absence, if required)."""
    out: list[tuple[Group, str]] = []
    for group in root.walk_list():
        for child in group.spec.children:
            if not child.required:
                continue
            present = False
            if isinstance(child, SegmentSpec):
                for s in group.segments:
                    if s.name == child.name:
                        present = True
                        break
            else:
                for g in group.groups:
                    if g.spec is child:
                        present = True
                        break
            if not present:
                out.append((group, child.name))
    return out


# -- resolving paths in a scope ---------------------------------------------------------------


def resolve(path: Hl7Path, scope: Group, tracker: ReadTracker) -> Node | Segment | None:
    return read_path(tracker, path, scope)


def read_path(tracker: ReadTracker, path: Hl7Path, scope: Group) -> Node | Segment | None:
    """``resolve``, the tracker first (``partial(read_path, tracker)`` is the source's
    reader: a partial with positional arguments only is the cheaper to call)."""
    segment = scope.found.get(path.segment, _UNKNOWN)  # find_segment's memo, inline (hot)
    if segment is _UNKNOWN:
        segment = scope.find_segment(path.segment)
    if segment is None:
        return None
    field_no = path.field
    if field_no is None:  # the segment itself: looked at (ReadTracker.mark, inline)
        tracker.marked.add(segment.index)
        return segment
    # a path read again in the same segment gives what it gave (the same ``Node``, its text
    # kept once read): the tracker's sets only grow, so it would add nothing to them
    index = segment.index
    key = path._memo + index  # a segment index is below 2**32
    resolved = tracker.resolved
    found = resolved.get(key)
    if found is not None:
        return found  # type: ignore[no-any-return]
    # the part the path names counts as read once a rule consults it (a fallback of
    # ``first`` not taken is resolved only when it held nothing else); parts below it when
    # they are read (ReadTracker.read, inline: the part names its field and segment, 0144)
    tracker.parts.add((index, field_no, path._rep1, path._comp1))
    # ``ReadNode(segment, field_no, rep, comp, sub, tracker)``, its text as ``Segment.get``
    # gives it: a flat segment's first repetition and subcomponent at once (``get``'s hot
    # path, decision 0126), any other through ``get``
    if path._simple:
        if segment._flat:
            fields = segment._f
            value = fields[field_no] if field_no < len(fields) else ""
            if value:
                number = path._comp1
                if number == 1:
                    value = value.partition(segment._cs)[0]
                else:
                    parts = value.split(segment._cs)
                    value = parts[number - 1] if number <= len(parts) else ""
        else:  # the field's first components, split and unescaped once (decision 0144)
            comps = segment._c1.get(field_no)
            if comps is None:
                comps = segment.first_components(field_no)
            number = path._comp1
            value = comps[number - 1] if number <= len(comps) else ""
    else:
        value = segment.get(field_no, path._rep1, path._comp1, path.sub or 1)
    found = _new_node(ReadNode)
    found.segment = segment
    found.field = field_no
    found.rep = path._rep1
    found.comp = path.comp
    found.sub = path.sub
    found.tracker = tracker
    found.text = value
    found._empty = None
    found._children = None
    resolved[key] = found
    return found  # type: ignore[no-any-return]


def resolve_text(path: Hl7Path, scope: Group, tracker: ReadTracker) -> str | Segment | None:
    """``resolve`` for a value that is built into a resource: a field, component or
    subcomponent comes as its text (read as ``Node.text`` reads it, which adds to the
    tracker what ``resolve`` adds)."""
    return read_text(tracker, path, scope)


def read_text(tracker: ReadTracker, path: Hl7Path, scope: Group) -> str | Segment | None:
    """``resolve_text``, the tracker first (as ``read_path``)."""
    found = read_path(tracker, path, scope)
    return found.text if type(found) is ReadNode else found  # type: ignore[union-attr,return-value]


def peek(path: Hl7Path, scope: Group) -> str:
    """The text ``resolve`` would give (``Node.text``; a whole segment has none), recorded
    nowhere: ``first`` compares an alternative it did not take with the value it took."""
    segment = scope.found.get(path.segment, _UNKNOWN)  # find_segment's memo, inline (hot)
    if segment is _UNKNOWN:
        segment = scope.find_segment(path.segment)
    if segment is None or path.field is None:
        return ""
    return segment.get(path.field, path.rep or 1, path.comp or 1, path.sub or 1)


def read_unless_other(tracker: ReadTracker, path: Hl7Path, scope: Group, chosen: str) -> None:
    """An alternative ``first`` did not take (closures._read_alternatives): resolved (read)
    when its text is empty or ``chosen``, as ``peek`` then ``resolve`` did. A path already
    resolved in that segment is skipped: ``resolve`` would give its memo and add nothing
    to the tracker's sets, and ``peek`` records nothing (decision 0112)."""
    read_alternatives(tracker, (path,), scope, chosen)


def read_alternatives(
    tracker: ReadTracker, paths: tuple[Hl7Path, ...], scope: Group, chosen: str
) -> None:
    """``read_unless_other`` of each of ``paths`` in turn, in one call (decision 0139: the
    alternatives ``first`` did not take, one Python call per ``first`` instead of one per
    path)."""
    found = scope.found
    resolved = tracker.resolved
    for path in paths:
        segment = found.get(path.segment, _UNKNOWN)  # find_segment's memo, inline (hot)
        if segment is _UNKNOWN:
            segment = scope.find_segment(path.segment)
        if segment is None:
            continue  # peek gives "", and resolve reads nothing of an absent segment
        field_no = path.field
        if field_no is None:  # a whole segment: peek gives "", resolve marks it
            tracker.marked.add(segment.index)
            continue
        index = segment.index
        key = path._memo + index  # a segment index is below 2**32
        if key in resolved:
            continue
        if path._simple:  # as ``read_path`` reads it
            if segment._flat:
                fields = segment._f
                value = fields[field_no] if field_no < len(fields) else ""
                if value:
                    number = path._comp1
                    if number == 1:
                        value = value.partition(segment._cs)[0]
                    else:
                        parts = value.split(segment._cs)
                        value = parts[number - 1] if number <= len(parts) else ""
            else:
                comps = segment._c1.get(field_no)
                if comps is None:
                    comps = segment.first_components(field_no)
                number = path._comp1
                value = comps[number - 1] if number <= len(comps) else ""
        else:
            value = segment.get(field_no, path._rep1, path._comp1, path.sub or 1)
        other = value.strip()
        if other and other != chosen:
            continue  # another value: left unread unless another rule reads it
        # read: what ``read_path`` records and the node it makes, with the text just read
        tracker.parts.add((index, field_no, path._rep1, path._comp1))
        node = _new_node(ReadNode)
        node.segment = segment
        node.field = field_no
        node.rep = path._rep1
        node.comp = path.comp
        node.sub = path.sub
        node.tracker = tracker
        node.text = value
        node._empty = None
        node._children = None
        resolved[key] = node


# the readers as methods of the tracker (decision 0144): the source's ``resolve`` is the
# tracker's bound ``read_path``, which generated code calls as a Python call (a
# ``functools.partial`` in between was a call from C, with an interpreter loop of its own)
ReadTracker.read_path = read_path  # type: ignore[attr-defined]
ReadTracker.read_text = read_text  # type: ignore[attr-defined]
ReadTracker.read_unless_other = read_unless_other  # type: ignore[attr-defined]
ReadTracker.read_alternatives = read_alternatives  # type: ignore[attr-defined]


def iterate(path: Hl7Path, scope: Group, tracker: ReadTracker) -> list[Node]:
    """Every repetition of a field (``PID-3``) or the one named (``PID-3[2]``)."""
    segment = scope.find_segment(path.segment)
    if segment is None or path.field is None:
        return []
    tracker.mark(segment, path.field)
    reps = [path.rep] if path.rep else range(1, segment.repetitions(path.field) + 1)
    # loops, not comprehensions (each a function made per call, decision 0126): every node
    # made, then the present ones marked read, as before
    nodes: list[Node] = []
    field_no, comp, sub = path.field, path.comp, path.sub
    for rep in reps:  # ``Node(segment, field, rep, comp, sub, tracker)``, no __init__ (0149)
        node = _new_node(Node)
        node.segment = segment
        node.field = field_no
        node.rep = rep
        node.comp = comp
        node.sub = sub
        node.tracker = tracker
        node._text = None
        node._empty = None
        node._children = None
        nodes.append(node)
    present: list[Node] = []
    for node in nodes:
        if not node.is_empty():
            present.append(node)
    for node in present:
        tracker.read(segment, path.field, node.rep, path.comp or 1)
    return present


def segment_scope(segment: Segment, parent: Group) -> Group:
    """A one-segment scope for ``each: NTE``: paths reach this segment first, then the parent.

    ``Group(GroupSpec(segment.name, []), parent, segments=[segment])``: the spec (no parts,
    nothing of it changes) is one per segment name, and the group is made without the
    dataclass ``__init__`` call, its fields set as that sets them (decision 0144)."""
    spec = _SCOPE_SPECS.get(segment.name)
    if spec is None:
        spec = GroupSpec(segment.name, [])
        if len(_SCOPE_SPECS) < 512:  # a sender's Z-segment names are not bounded
            _SCOPE_SPECS[segment.name] = spec
    scope = _new_group(spec, parent)
    scope.segments.append(segment)
    return scope


_SCOPE_SPECS: dict[str, GroupSpec] = {}


def _new_group(spec: GroupSpec, parent: Group | None) -> Group:
    """``Group(spec, parent)`` without the dataclass ``__init__`` call (a class called from
    Python runs its Python ``__init__`` in an interpreter loop of its own; decisions 0144,
    0149): its fields set as that sets them, the lists and the memo new."""
    group = _new_node(Group)
    group.spec = spec
    group.parent = parent
    group.segments = []
    group.groups = []
    group.position = 0
    group.found = {}
    return group  # type: ignore[no-any-return]

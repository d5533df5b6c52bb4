"""Message and Segment: fields split eagerly, everything below a field split lazily.

A segment keeps its fields as written (``str.split`` on the field separator). ``get``
answers the common case (a field without repetition, subcomponent or escape characters)
straight from that list; other fields are split into repetitions/components/subcomponents
and unescaped on first access, then cached on the segment.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import compress
from itertools import count as counting

from adapter.errors import Issue
from adapter.hl7v2.escapes import Delimiters, unescape

# a split field: repetitions -> components -> subcomponents (unescaped leaves)
Tree = list[list[list[str]]]


def _is_deep(value: str, d: Delimiters) -> bool:
    """Does the value need more than a split on components? (`in` beats a regex here)"""
    return d.repetition in value or d.subcomponent in value or d.escape in value


_new = object.__new__


class Segment:
    __slots__ = ("_c1", "_cache", "_cs", "_d", "_f", "_flat", "index", "name", "occurrence")

    def __init__(
        self,
        name: str,
        occurrence: int,
        index: int,
        fields: list[str],
        delimiters: Delimiters,
        flat: bool,
    ) -> None:
        self.name = name
        self.occurrence = occurrence  # 1-based among segments of this name: OBX[3]
        self.index = index  # 0-based position in the message
        # fields[0] is the segment name; for MSH fields[1] is the field separator (MSH-1)
        self._f = fields
        self._d = delimiters
        self._cs = delimiters.component
        # no repetition, subcomponent or escape character anywhere in the segment
        self._flat = flat
        self._cache: dict[int, Tree] | None = None
        # field -> ``first_components(field)``, kept once asked (decision 0144)
        self._c1: dict[int, list[str]] = {}

    @classmethod
    def made(
        cls,
        name: str,
        occurrence: int,
        index: int,
        fields: list[str],
        delimiters: Delimiters,
        flat: bool,
    ) -> Segment:
        """``Segment(...)`` for the parser, without the ``__init__`` call (a class called
        from Python runs its Python ``__init__`` in an interpreter loop of its own; 0149):
        its attributes set as ``__init__`` sets them."""
        segment = _new(cls)
        segment.name = name
        segment.occurrence = occurrence
        segment.index = index
        segment._f = fields
        segment._d = delimiters
        segment._cs = delimiters.component
        segment._flat = flat
        segment._cache = None
        segment._c1 = {}
        return segment  # type: ignore[no-any-return]

    # -- reading -------------------------------------------------------------------------
    def get(self, field: int, rep: int = 1, comp: int = 1, sub: int = 1) -> str:
        """The unescaped value at field[rep].comp.sub; "" when absent."""
        if field < 1:
            return ""
        try:
            value = self._f[field]
        except IndexError:
            return ""
        if not value:
            return ""
        if not self._flat:
            d = self._d
            if d.repetition in value or d.subcomponent in value or d.escape in value:
                return self._leaf(field, rep, comp, sub)
        # hot path: a value without repetition, subcomponent or escape characters
        if rep == 1 and sub == 1:
            cs = self._cs
            if cs not in value:
                return value if comp == 1 else ""
            parts = value.split(cs)
            return parts[comp - 1] if 0 < comp <= len(parts) else ""
        return ""

    def first_components(self, field: int) -> list[str]:
        """The components of the field's first repetition, each as its first subcomponent
        unescaped: ``get(field, 1, c, 1)`` is item c (from 1), "" past the end. Kept per
        field (``_c1``): the mapping reads several components of one field (decision 0144)."""
        written = self._f  # ``raw``, inline
        value = written[field] if 0 < field < len(written) else ""
        if not value:
            comps: list[str] = []
        elif self._flat or not _is_deep(value, self._d):
            comps = value.split(self._cs)  # ``get``'s hot path
        else:
            comps = []
            for component in self._tree(field)[0]:  # ``_leaf``'s tree, its first repetition
                comps.append(component[0])
        self._c1[field] = comps
        return comps

    def _leaf(self, field: int, rep: int, comp: int, sub: int) -> str:
        if rep < 1 or comp < 1 or sub < 1:
            return ""
        tree = self._tree(field)
        try:
            return tree[rep - 1][comp - 1][sub - 1]
        except IndexError:
            return ""

    def _tree(self, field: int) -> Tree:
        cache = self._cache
        if cache is None:
            cache = self._cache = {}
        tree = cache.get(field)
        if tree is None:
            tree = cache[field] = self._split(field)
        return tree

    def _split(self, field: int) -> Tree:
        written = self._f  # ``raw``, inline (a call per read)
        value = written[field] if 0 < field < len(written) else ""
        if not value:
            return []
        if self.name == "MSH" and field <= 2:  # separators themselves: never split
            return [[[value]]]
        d = self._d
        if d.special.search(value) is None:
            return [[[value]]]
        esc = d.escape
        return [
            [
                [unescape(s, d) if esc in s else s for s in c.split(d.subcomponent)]
                for c in r.split(d.component)
            ]
            for r in value.split(d.repetition)
        ]

    def raw(self, field: int) -> str:
        """The field as written (escaped, with all its separators); "" when absent."""
        if field < 1 or field >= len(self._f):
            return ""
        return self._f[field]

    def repetitions(self, field: int) -> int:
        """How many repetitions the field has (0 when it is empty or absent)."""
        written = self._f  # ``raw``, inline (a call per read)
        value = written[field] if 0 < field < len(written) else ""
        if not value:
            return 0
        if self._flat or (self.name == "MSH" and field <= 2):
            return 1
        return value.count(self._d.repetition) + 1

    def components(self, field: int, rep: int = 1) -> list[str]:
        """The unescaped components of one repetition (first subcomponent of each)."""
        written = self._f  # ``raw``, inline (a call per read)
        value = written[field] if 0 < field < len(written) else ""
        if not value or rep < 1:
            return []
        if self._flat or not _is_deep(value, self._d):
            return value.split(self._cs) if rep == 1 else []
        tree = self._tree(field)
        if rep > len(tree):
            return []
        return [c[0] for c in tree[rep - 1]]

    def subcomponents(self, field: int, rep: int = 1, comp: int = 1) -> list[str]:
        if rep < 1 or comp < 1:
            return []
        tree = self._tree(field)
        try:
            return list(tree[rep - 1][comp - 1])
        except IndexError:
            return []

    def blank(self, field: int, rep: int = 1, comp: int | None = None) -> bool:
        """Whether no subcomponent of field[rep] (of its component ``comp``, if given) holds
        anything: what ``subcomponents`` would say for each part, without splitting a value
        that has no repetition, subcomponent or escape character (the common case)."""
        written = self._f  # ``raw``, inline (a call per read)
        value = written[field] if 0 < field < len(written) else ""
        if not value or rep < 1 or (comp is not None and comp < 1):
            return True
        if (self._flat or not _is_deep(value, self._d)) and not (self.name == "MSH" and field <= 2):
            if rep != 1:  # one repetition only
                return True
            if comp is None:  # every component (each its only subcomponent) is empty
                return not value.strip(self._cs)
            parts = value.split(self._cs)
            return comp > len(parts) or not parts[comp - 1]
        if comp is None:  # loops, not a generator (each step resumed from C; 0149)
            count = len(self.components(field, rep))
            held = False
            for c in range(1, count + 1):
                if any(self.subcomponents(field, rep, c)):
                    held = True
                    break
            return not held
        return not any(self.subcomponents(field, rep, comp))

    def filled_components(self, field: int, rep: int = 1) -> list[int]:
        """The numbers of the components of field[rep] any subcomponent of which holds
        anything: what ``subcomponents`` says of each of ``components``, without splitting a
        value that has no repetition, subcomponent or escape character (the common case;
        the unread report asks it of every field a rule read)."""
        written = self._f  # ``raw``, inline (a call per read)
        value = written[field] if 0 < field < len(written) else ""
        if not value or rep < 1:
            return []
        if (self._flat or not _is_deep(value, self._d)) and not (self.name == "MSH" and field <= 2):
            if rep != 1:  # one repetition only
                return []
            # the numbers of the non-empty parts, counted in C (decision 0139)
            return list(compress(counting(1), value.split(self._cs)))
        count = len(self.components(field, rep))
        return [c for c in range(1, count + 1) if any(self.subcomponents(field, rep, c))]

    def field_count(self) -> int:
        """Number of fields as written (trailing empty fields included; MSH counts MSH-1)."""
        return len(self._f) - 1

    def populated_fields(self) -> list[int]:
        """Numbers of the fields that hold anything (for MSH, 1 and 2 always do)."""
        fields = self._f
        # the numbers of the non-empty fields after the name, counted in C (decision 0139)
        return list(compress(range(1, len(fields)), fields[1:]))

    def populated(self) -> Iterator[tuple[int, int, int, int]]:
        """Every non-empty (field, rep, comp, sub) position, in message order."""
        for f in self.populated_fields():
            for r, rep in enumerate(self._tree(f), 1):
                for c, comp in enumerate(rep, 1):
                    for s, leaf in enumerate(comp, 1):
                        if leaf:
                            yield (f, r, c, s)

    def location(
        self,
        field: int | None = None,
        rep: int | None = None,
        comp: int | None = None,
        sub: int | None = None,
    ) -> str:
        """``OBX[3]-5[1].2``; parts not given are left out (a sub without comp adds ``.1``)."""
        out = f"{self.name}[{self.occurrence}]"
        if field is None:
            return out
        out += f"-{field}"
        if rep is not None:
            out += f"[{rep}]"
        if comp is not None or sub is not None:
            out += f".{comp if comp is not None else 1}"
        if sub is not None:
            out += f".{sub}"
        return out

    @property
    def delimiters(self) -> Delimiters:
        return self._d

    def __repr__(self) -> str:
        return f"<Segment {self.name}[{self.occurrence}] fields={self.field_count()}>"


class Message:
    """One parsed HL7 v2 message."""

    __slots__ = (
        "_by_name",
        "_lines",
        "_text",
        "charset",
        "declared_charset",
        "delimiters",
        "issues",
        "segments",
    )

    def __init__(
        self,
        segments: list[Segment],
        lines: list[str],
        delimiters: Delimiters,
        charset: str,
        declared_charset: str | None,
        issues: list[Issue] | None = None,
    ) -> None:
        self.segments = segments
        self.charset = charset  # the Python codec actually used
        self.declared_charset = declared_charset  # MSH-18 as written, None when empty
        self.delimiters = delimiters
        # non-fatal observations made while reading (e.g. a doubtful MSH-18)
        self.issues: list[Issue] = issues or []
        self._lines = lines
        self._text: str | None = None
        self._by_name: dict[str, list[Segment]] | None = None

    @property
    def text(self) -> str:
        """The decoded message, segments separated by a single CR."""
        if self._text is None:
            self._text = "\r".join(self._lines)
        return self._text

    @property
    def msh(self) -> Segment:
        return self.segments[0]

    def message_type(self) -> str:
        """MSH-9.1 ^ MSH-9.2, e.g. "ORU^R01" (just "ACK" when there is no trigger event)."""
        msh = self.segments[0]
        code, event = msh.get(9, 1, 1), msh.get(9, 1, 2)
        return f"{code}^{event}" if event else code

    def control_id(self) -> str:
        return self.segments[0].get(10)

    def version(self) -> str:
        return self.segments[0].get(12)

    def segments_named(self, name: str) -> list[Segment]:
        by_name = self._by_name
        if by_name is None:
            by_name = {}
            for seg in self.segments:
                by_name.setdefault(seg.name, []).append(seg)
            self._by_name = by_name
        return list(by_name.get(name, ()))

    def first(self, name: str) -> Segment | None:
        found = self.segments_named(name)
        return found[0] if found else None

    def __iter__(self) -> Iterator[Segment]:
        return iter(self.segments)

    def __len__(self) -> int:
        return len(self.segments)

    def __repr__(self) -> str:
        return (
            f"<Message {self.message_type()} segments={len(self.segments)} charset={self.charset}>"
        )

"""Decision 0126: the translation's shortcuts give what the code they replace gave.

- ``read_path`` makes its ``ReadNode`` without ``__init__``, a flat segment's text taken
  inline: the node's parts and text, and the read record, are those of
  ``ReadNode(segment, field, rep, comp, sub, tracker)`` (``Segment.get``);
- ``read_unless_other`` compares a flat segment's text inline: it reads exactly what
  ``peek`` then ``resolve`` read;
- ``first()``'s alternatives not taken name each compiled path once (``closures._once``).
"""

from __future__ import annotations

import itertools

import pytest

from adapter.mapping import closures
from adapter.mapping import hl7v2_paths as v2
from tests.unit.mapping_support import hl7

VALUES = [
    "", " ", "a", " a ", "^", "^a", "a^", "^ ", " ^b", "a~b", "~b", "&x", "a&b^c",
    "\\F\\", "\\S\\x", "^^^", "a^b^c~d^e", "&", "~", " ~ ", "x\\T\\y^z", "a^^c^",
]  # fmt: skip

PATHS = [
    "OBX", "OBX-5", "OBX-5.1", "OBX-5.2", "OBX-5.3", "OBX-5.4", "OBX-5.0", "OBX-5[1]",
    "OBX-5[1].2", "OBX-5[2]", "OBX-5[2].1", "OBX-5[0]", "OBX-5.2.1", "OBX-5.2.2", "OBX-5.1.0",
    "OBX-0", "OBX-9", "OBX-9.2", "OBX-3.2", "PID-3",
]  # fmt: skip


def messages(value: str) -> list[tuple[str, object]]:
    """OBX-5 holding ``value`` in a segment that is flat (no repetition, subcomponent or
    escape character elsewhere) when the value is, and in one that is not (OBX-8 ``~``)."""
    return [
        ("flat", hl7("OBX|1|ST|C^code||" + value)),
        ("deep", hl7("OBX|1|ST|C^code||" + value + "|||H~L")),
    ]


def reference_read_path(tracker: v2.ReadTracker, path: v2.Hl7Path, scope: v2.Group) -> object:
    """``read_path`` as it was before decision 0126 (the node made by its ``__init__``)."""
    segment = scope.find_segment(path.segment)
    if segment is None:
        return None
    key = path._memo + segment.index
    found = tracker.resolved.get(key)
    if found is not None:
        return found
    if path.field is None:
        tracker.mark(segment, None)
        found = tracker.resolved[key] = segment
        return found
    rep = path.rep or 1
    # the segment and the field read: found from the part since decision 0144
    tracker.read(segment, path.field, rep, path.comp or 1)
    found = tracker.resolved[key] = v2.ReadNode(
        segment, path.field, rep, path.comp, path.sub, tracker
    )
    return found


def same_record(a: v2.ReadTracker, b: v2.ReadTracker) -> None:
    for part in ("segments", "fields", "parts"):
        assert getattr(a, part) == getattr(b, part), part
    # a whole segment is not kept in ``resolved`` since decision 0144 (the segment itself
    # is what a read of it gives, and marking it again adds nothing)
    kept = {key for key, value in b.resolved.items() if isinstance(value, v2.ReadNode)}
    assert set(a.resolved) == kept


@pytest.mark.parametrize("value", VALUES)
def test_read_path_gives_the_node_and_record_its_init_gave(value: str) -> None:
    for (shape, message), path_text in itertools.product(messages(value), PATHS):
        structure = v2.compile_structure(["MSH", "OBX*"])
        root, _ = v2.build_groups(message, structure)  # type: ignore[arg-type]
        fast_tracker, slow_tracker = v2.ReadTracker(), v2.ReadTracker()
        path = v2.compile_path(path_text)
        fast = v2.read_path(fast_tracker, path, root)
        slow = reference_read_path(slow_tracker, path, root)
        where = (shape, value, path_text)
        if isinstance(slow, v2.ReadNode):
            assert type(fast) is v2.ReadNode, where
            for slot in ("segment", "field", "rep", "comp", "sub", "tracker", "_empty"):
                got, want = getattr(fast, slot), getattr(slow, slot)
                assert got is want or (slot == "tracker" and got is fast_tracker), where
            # ``_text`` is ``Node.text``'s, which the ``text`` slot shadows on a ReadNode:
            # read_path leaves it unset since decision 0144
            assert fast.text == slow.text == slow._text, where
            assert fast._children is None
        else:
            assert fast is slow, where
        same_record(fast_tracker, slow_tracker)
        assert v2.read_path(fast_tracker, path, root) is fast  # the memo


@pytest.mark.parametrize("value", VALUES)
def test_read_unless_other_reads_what_peek_then_resolve_read(value: str) -> None:
    chosen_texts = ["", "a", "b", "x", "C", "a~b", "\\F\\"]
    for (_shape, message), path_text, chosen in itertools.product(
        messages(value), PATHS, chosen_texts
    ):
        structure = v2.compile_structure(["MSH", "OBX*"])
        root, _ = v2.build_groups(message, structure)  # type: ignore[arg-type]
        fast_tracker, slow_tracker = v2.ReadTracker(), v2.ReadTracker()
        path = v2.compile_path(path_text)
        v2.read_unless_other(fast_tracker, path, root, chosen)
        other = v2.peek(path, root).strip()
        if not other or other == chosen:
            reference_read_path(slow_tracker, path, root)
        same_record(fast_tracker, slow_tracker)


def test_first_names_each_path_once_in_order() -> None:
    a, b, c = (v2.compile_path(t) for t in ("OBX-11", "OBR-25", "OBX-5"))
    assert closures._once([a, b, a, c, b, a]) == (a, b, c)
    assert closures._once([]) == ()

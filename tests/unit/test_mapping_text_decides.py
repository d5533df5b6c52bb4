"""``truthy``, ``exists`` and ``text`` answer an HL7 v2 ``ReadNode`` from its text alone
(adapter/mapping/values.py ``TEXT_DECIDES``): that is only right if such a node is never
empty when its text is not blank. Checked against the node's own ``is_empty`` for fields
of every shape (components, repetitions, subcomponents, escapes, blanks, MSH-1/2) and paths
naming each part, and that the answers leave the read record as ``is_empty`` would."""

from __future__ import annotations

import itertools

import pytest

from adapter.mapping import hl7v2_paths as v2
from adapter.mapping.closures import truthy
from adapter.mapping.functions.logic import exists
from adapter.mapping.values import TEXT_DECIDES, text
from tests.unit.mapping_support import hl7

VALUES = [
    "", " ", "a", " a ", "^", "^a", "a^", "^ ", " ^b", "a~b", "~b", "&x", "a&b^c",
    "\\F\\", "\\S\\x", "^^^", "a^b^c~d^e", "&", "~", " ~ ", "x\\T\\y^z",
]  # fmt: skip
PATHS = [
    f"OBX-5{rep}{part}"
    for rep, part in itertools.product(["", "[1]", "[2]"], ["", ".1", ".2", ".1.1", ".1.2", ".2.1"])
]


def slow_truthy(node: v2.Node) -> bool:
    """What ``truthy`` said before the fast path (closures.truthy's generic branch)."""
    return not node.is_empty() and (node.text or "").strip() != ""


@pytest.mark.parametrize("value", VALUES)
def test_a_read_node_is_truthy_exactly_when_its_text_is_not_blank(value: str) -> None:
    assert v2.ReadNode in TEXT_DECIDES
    message = hl7("OBX|1|ST|C^code||" + value)
    for path_text in [*PATHS, "MSH-1", "MSH-2", "MSH-2.1"]:
        path = v2.compile_path(path_text)
        root, _ = v2.build_groups(message, v2.compile_structure(["MSH", "OBX*"]))
        fast_tracker, slow_tracker = v2.ReadTracker(), v2.ReadTracker()
        fast = v2.resolve(path, root, fast_tracker)
        slow = v2.resolve(path, root, slow_tracker)
        assert type(fast) is v2.ReadNode, path_text
        expected = slow_truthy(slow)  # type: ignore[arg-type]
        assert truthy(fast) is expected, (value, path_text)
        assert exists(None, fast) is expected, (value, path_text)  # type: ignore[arg-type]
        assert text(fast) == slow.text  # type: ignore[union-attr]
        for part in ("segments", "fields", "parts"):
            assert getattr(fast_tracker, part) == getattr(slow_tracker, part)

"""Decision 0112: ``first()`` written as one generated function (adapter/mapping/closures.py)
gives what the loop over its arguments' closures gave (``_first_loop``, kept as the
reference): the same value, the same parts of the message marked read (which the unread
report lists), the same issues. HL7 v2's ``read_unless_other`` (``first``'s alternatives
not taken) marks what ``peek`` then ``resolve`` marked."""

from __future__ import annotations

from typing import Any

import pytest

from adapter.hl7v2 import Message, Segment
from adapter.mapping import closures
from adapter.mapping import hl7v2_paths as v2
from adapter.mapping.expressions import compile_value
from adapter.mapping.functions import FUNCTIONS
from tests.unit.mapping_support import evaluation, hl7, table

FIRSTS = [
    "=first(OBX-5, OBX-6)",
    "=first(OBX-5.2, OBX-5.1, 'fallback')",
    "=first(OBR-3.1, ORC-3.1, OBR-2.1, ORC-2.1)",
    "=first(OBX-14, OBR-7)",
    "=first(trim(OBX-8), OBX-10, OBX-9)",
    "=first(when(exists(OBX-6.3), OBX-6.2), upper(OBX-6), when(empty(OBX-6.1), OBX-6.2))",
    "=first(map('flags', OBX-8), OBX-8)",
    "=first(@missing, @blank, OBX-3.2, OBX-3.1)",
    "=first(@nothing, first(OBX-9, OBX-3.5), OBX-3.1)",
    "=first(OBX, OBX-3)",
    "=first(ZZZ-1, OBX-4, '')",
    "=first()",
]

MESSAGES = [
    ("OBR|1|P1|F1|GLU||||20261120080000", "OBX|1|NM|GLU^血糖^L||5.6|mmol/L^^UCUM|||H"),
    ("ORC|NW|P2|F2", "OBR|1|||CBC", "OBX|1|ST|WBC||  ||||H||X||||20261120090000"),
    ("OBR|1|P3||X|||20261120070000", "OBX|1|CWE|A^^^B^^^^^原文|2|POS^阳性|^mg/dL|||N"),
    ("OBR|1", "OBX|1|NM|||5.6~7.1|mmol/L^millimole^UCUM||5.6|hh"),
]


def message_scope(message: Message) -> Any:
    ev = evaluation(message, {"flags": table("flags", {"codes": {"H": "high", "N": "normal"}})})
    ev.vars.update({"blank": "   ", "missing": None})
    return ev


def run(
    maker: Any, text: str, segments: tuple[str, ...], peek_then_resolve: bool = False
) -> tuple[Any, ...]:
    node = compile_value(text, v2.compile_path, set(FUNCTIONS))
    fn = maker(node.args, tuple(closures.expr_fn(arg) for arg in node.args))
    ev = message_scope(hl7(*segments))
    if peek_then_resolve:  # the alternatives read as before read_unless_other
        source = ev.state.source

        def peek_then_resolve_each(paths: Any, scope: Any, chosen: str) -> None:
            # what closures._read_alternatives did for a source without read_unless_other;
            # the generated first() calls the source's read_alternatives (decision 0144)
            for path in paths:
                other = source.peek(path, scope).strip()
                if not other or other == chosen:
                    source.resolve(path, scope)

        source.read_unless_other = None
        source.read_alternatives = peek_then_resolve_each
    value = fn(ev)
    tracker = ev.state.source.tracker
    shown = value.text if isinstance(value, v2.Node) else value
    if isinstance(value, Segment):  # a whole segment (messages are parsed per run)
        shown = ("segment", value.name, value.index)
    location = value.location if isinstance(value, v2.Node) else None
    return (
        shown,
        location,
        sorted(tracker.segments),
        sorted(tracker.fields),
        sorted(tracker.parts),
        [(i.severity, i.diagnostics, i.location) for i in ev.state.issues],
    )


@pytest.mark.parametrize("segments", MESSAGES)
@pytest.mark.parametrize("text", FIRSTS)
def test_generated_first_is_the_loop(text: str, segments: tuple[str, ...]) -> None:
    reference = run(closures._first_loop, text, segments, peek_then_resolve=True)
    assert run(closures._lazy_first, text, segments) == reference


def test_an_alternative_with_another_value_stays_unread() -> None:
    # OBR-8 holds another time than OBR-7: first() takes OBR-7 and leaves OBR-8 unread;
    # an empty alternative (OBR-6) and one equal to the value taken (OBR-9) count as read
    segments = ("OBR|1|||X|||20261120070000|20261120080000|20261120070000",)
    shown, _, _, fields, _, _ = run(
        closures._lazy_first, "=first(OBR-7, OBR-6, OBR-8, OBR-9)", segments
    )
    assert shown == "20261120070000"
    index = 1  # OBR after MSH
    assert (index, 7) in fields and (index, 6) in fields and (index, 9) in fields
    assert (index, 8) not in fields


def test_read_unless_other_skips_a_path_already_read() -> None:
    message = hl7("OBX|1|NM|GLU||5.6|mmol/L")
    ev = evaluation(message)
    tracker = ev.state.source.tracker
    path = v2.compile_path("OBX-6")
    node = ev.state.source.resolve(path, ev.scope)
    before = (set(tracker.segments), set(tracker.fields), set(tracker.parts))
    ev.state.source.read_unless_other(path, ev.scope, "other")  # read already: no change
    assert (tracker.segments, tracker.fields, tracker.parts) == before
    assert ev.state.source.resolve(path, ev.scope) is node
    other = v2.compile_path("OBX-7")  # empty: read
    ev.state.source.read_unless_other(other, ev.scope, "5.6")
    assert (1, 7) in tracker.fields
    absent = v2.compile_path("ZZZ-1")  # no such segment: nothing read
    ev.state.source.read_unless_other(absent, ev.scope, "5.6")
    assert (tracker.segments, tracker.fields) == ({1}, {(1, 6), (1, 7)})

"""Decision 0121: the translation's shortcuts give what the general code gives.

- ``exists`` of an HL7 v2 ``Node`` (a part reached by ``@cx.1``) by its text alone
  (``values.TEXT_FIRST``): its general branch read the text first, so the read record is
  the same, and a node whose text is not blank is never empty;
- a variable with one part (``@facility.id``, ``@cwe.1``) read at once gives what the
  part-by-part reading gives (``closures._var_parts``);
- ``truthy()`` is left out of generated conditions only around functions that give a
  ``bool`` (``closures.GIVES_BOOL``);
- a concept map's remembered ``translate`` answers as the table does.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from adapter.mapping import closures
from adapter.mapping import hl7v2_paths as v2
from adapter.mapping.expressions import compile_value
from adapter.mapping.functions import FUNCTIONS
from adapter.mapping.functions.logic import exists
from adapter.mapping.terminology import concept_map_from_data
from adapter.mapping.values import TEXT_FIRST, is_position_type
from tests.unit.mapping_support import evaluation, hl7

VALUES = [
    "", " ", "a", " a ", "^", "^a", "a^", "^ ", " ^b", "a~b", "~b", "&x", "a&b^c",
    "\\F\\", "\\S\\x", "^^^", "a^b^c~d^e", "&", "~", " ~ ", "x\\T\\y^z",
]  # fmt: skip


def general_exists(v: Any) -> bool:
    """``exists`` of one source position as its general branch says it."""
    assert is_position_type(type(v))
    as_text = getattr(v, "text", None)
    if not isinstance(as_text, str):
        return True
    check = getattr(v, "is_empty", None)
    return not (check and check()) and as_text.strip() != ""


@pytest.mark.parametrize("value", VALUES)
def test_exists_of_a_node_is_its_general_answer_with_the_same_read_record(value: str) -> None:
    assert v2.Node in TEXT_FIRST
    message = hl7("OBX|1|ST|C^code||" + value)
    for path_text, parts in itertools.product(["OBX-5", "OBX-5[2]", "OBX-5.1"], [1, 2, 3]):
        root, _ = v2.build_groups(message, v2.compile_structure(["MSH", "OBX*"]))
        fast_tracker, slow_tracker = v2.ReadTracker(), v2.ReadTracker()
        path = v2.compile_path(path_text)
        fast = v2.resolve(path, root, fast_tracker).child(parts)  # type: ignore[union-attr]
        slow = v2.resolve(path, root, slow_tracker).child(parts)  # type: ignore[union-attr]
        assert type(fast) is v2.Node
        assert exists(None, fast) is general_exists(slow), (value, path_text, parts)  # type: ignore[arg-type]
        for part in ("segments", "fields", "parts"):
            assert getattr(fast_tracker, part) == getattr(slow_tracker, part)


class Thing:
    id = "thing-id"
    text = "thing"


@pytest.mark.parametrize("part", ["id", "1", "2", "9", "²", "text"])
def test_a_variable_with_one_part_reads_as_part_by_part(part: str) -> None:
    message = hl7("PID|1||A1^^^H&1.2^MR~B2^^^X||王^小明")
    root, _ = v2.build_groups(message, v2.compile_structure(["MSH", "PID"]))
    tracker = v2.ReadTracker()
    node = v2.resolve(v2.compile_path("PID-3"), root, tracker)
    values = [
        None, "text", {"id": "f1", "1": "one"}, ["a", "b"], [], node, node.child(1),  # type: ignore[union-attr]
        Thing(), 5, True,
    ]  # fmt: skip
    number = int(part) if part.isdecimal() else None
    for value in values:
        ev = evaluation(message)
        ev.vars["x"] = value
        got = closures.expr_fn(compile_value(f"=@x.{part}", v2.compile_path, set(FUNCTIONS)))(ev)
        expected = closures._var_parts(value, ((part, number),))
        assert got is expected or (type(got) is not v2.Node and got == expected), (value, part)


def test_gives_bool_names_functions_that_give_a_bool() -> None:
    message = hl7("OBX|1|NM|C^code||5.6~7|mmol/L|3-8|H")
    root, _ = v2.build_groups(message, v2.compile_structure(["MSH", "OBX*"]))
    tracker = v2.ReadTracker()
    samples: list[Any] = [None, "", " ", "x", "<0.5", "5.6", True, False, 0, 1.5, {}, {"a": 1}]
    samples += [[], ["x"], v2.resolve(v2.compile_path("OBX-5"), root, tracker)]
    samples += [v2.resolve(v2.compile_path("OBX"), root, tracker)]  # a whole segment
    samples += [v2.resolve(v2.compile_path("OBX-3"), root, tracker).child(2)]  # type: ignore[union-attr]
    ev = evaluation(message)
    for name in closures.GIVES_BOOL:
        fn = FUNCTIONS[name]
        assert fn.__annotations__["return"] == "bool", name
        arity = {"exists": 1, "empty": 1, "not": 1, "is_numeric": 1, "has_comparator": 1}
        for args in itertools.product(samples, repeat=arity.get(name, 2)):
            if name == "matches" and not isinstance(args[1], str):
                continue
            assert type(fn(ev, *args)) is bool, (name, args)


@pytest.mark.parametrize(
    "text",
    [
        "=when(exists(OBX-5), OBX-5)",
        "=when(OBX-5, OBX-6)",
        "=all(eq(OBX-2, 'NM'), one_of(OBX-8, 'H', 'L'), not(empty(OBX-6)))",
        "=any(is_numeric(OBX-5), has_comparator(OBX-5), @flag)",
        "=when(all(), 'yes')",
        "=when(any(), 'yes')",
        "=when(matches(OBX-2, 'N.'), ne(OBX-8, 'N'))",
    ],
)
def test_conditions_without_truthy_evaluate_as_with_it(text: str) -> None:
    node = compile_value(text, v2.compile_path, set(FUNCTIONS))
    for flag in (None, "", "x", True, False):
        ev = evaluation(hl7("OBX|1|NM|C^code||5.6|mmol/L||H"))
        ev.vars["flag"] = flag
        got = closures.expr_fn(node)(ev)
        reference = _with_truthy(node, flag)
        shown = got.text if isinstance(got, v2.Node) else got
        assert shown == reference, (text, flag)


def test_truthy_is_left_out_around_bools_only() -> None:
    def source(text: str) -> str:
        return closures._inline(compile_value(text, v2.compile_path, set(FUNCTIONS)), {})

    assert "truthy(" not in source("=when(all(eq(OBX-2, 'NM'), not(empty(OBX-5))), OBX-5)")
    assert "truthy(" in source("=when(OBX-5, OBX-6)")
    assert "truthy(" in source("=all(@flag, exists(OBX-5))")
    assert "truthy(" in source("=when(trim(OBX-5), OBX-6)")


def _with_truthy(node: Any, flag: Any) -> Any:
    """The value through the plain functions (logic.when / all / any), no generated code."""
    ev = evaluation(hl7("OBX|1|NM|C^code||5.6|mmol/L||H"))
    ev.vars["flag"] = flag

    def value(n: Any) -> Any:
        kind = type(n).__name__
        if kind == "Literal":
            return n.value
        if kind == "Path":
            return ev.state.source.resolve(n.compiled, ev.scope)
        if kind == "Var":
            return ev.vars.get(n.name)
        if n.name == "when":
            return value(n.args[1]) if closures.truthy(value(n.args[0])) else None
        if n.name == "all":
            return all(closures.truthy(value(a)) for a in n.args)
        if n.name == "any":
            return any(closures.truthy(value(a)) for a in n.args)
        return FUNCTIONS[n.name](ev, *(value(a) for a in n.args))

    got = value(node)
    return got.text if isinstance(got, v2.Node) else got


def test_a_concept_map_answers_again_as_it_did() -> None:
    table = concept_map_from_data(
        "flags",
        "flags.yaml",
        {
            "version": 1,
            "target_system": "http://example.org/flags",
            "map": {"H": "high", "l": {"code": "low", "display": "Low"}},
            "unmapped": {"action": "keep", "report": "warning"},
        },
    )
    for code in ["H", " h ", "L", "x", "X ", ""]:
        for report in (True, False):
            first = table.translate(code, report=report)
            assert table.translate(code, report=report) == first
            assert table._translate(code, report) == first
    assert table.translate("x", report=True)[1] is not None
    assert table.translate("x", report=False)[1] is None

"""Decision 0154: the translation's shortcuts give what the code they replace gave.

- every generated function has a code object of its own (the interpreter's inline caches
  are kept in it) and computes what the shared one computed;
- a datatype template is applied by one generated function: the variables, parameters,
  ``let`` values and the body's value of the former closure, for every number of arguments;
- the tests told by an exact type first (``join``, ``_dig``, the steps' kinds, the check's
  numbers) answer as the ``isinstance`` tests did, subclasses included.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from adapter.mapping import closures
from adapter.mapping import hl7v2_paths as v2
from adapter.mapping.closures import _made, build_fn, datatype_fn, let_fn
from adapter.mapping.engine import _STEP_KINDS, _dig, _step_kind
from adapter.mapping.expressions import compile_value
from adapter.mapping.functions import FUNCTIONS
from adapter.mapping.functions.strings import join
from adapter.mapping.nodes import (
    BundleStep,
    DatatypeTemplate,
    DictNode,
    EachStep,
    LetStep,
    ResourceStep,
)
from adapter.pipeline import checks
from tests.unit.mapping_support import evaluation, hl7

SEGMENTS = ("PID|1||P1^^^H^MR~P2||张^三", "OBX|1|CWE|GLU^血糖^LN||5.6|mmol/L|3.9-6.1|H")

# -- a code object per generated function -----------------------------------------------------


def test_functions_made_from_one_source_do_not_share_a_code_object() -> None:
    source = "lambda ev: a1(ev) + a2"
    one = _made(source, {"a1": len, "a2": 1})
    two = _made(source, {"a1": sum, "a2": 2})
    assert one.__code__ is not two.__code__
    assert one.__code__.co_code == two.__code__.co_code  # the same code, compiled once
    assert one([1, 2, 3]) == 4 and two([1, 2, 3]) == 8
    statement = "def build(ev):\n    return a1 + ev\n"
    first = _made(statement, {"a1": 10})
    second = _made(statement, {"a1": 20})
    assert first.__code__ is not second.__code__
    assert (first(1), second(1)) == (11, 21)


# -- a datatype template applied --------------------------------------------------------------


def former_apply(template: DatatypeTemplate) -> Any:
    """The closure ``datatype_fn`` made before decision 0154."""
    params = tuple(template.params)
    lets = tuple((name, let_fn(node)) for name, node in template.lets)
    body = build_fn(template.body)

    def apply(ev: Any, args: list[Any]) -> Any:
        variables = dict(ev.vars)
        variables.update(zip(params, args, strict=False))
        child = object.__new__(type(ev))
        child.state = ev.state
        child.scope = ev.scope
        child.vars = variables
        for name, let in lets:
            variables[name] = let(child)
        return body(child)

    return apply


def value(text: str) -> Any:
    return compile_value(text, v2.compile_path, set(FUNCTIONS))


TEMPLATES = [
    ([], [], [("code", "=OBX-3.1"), ("fixed", "x")]),
    (["cwe", "kind"], [], [("code", "=@cwe.1"), ("display", "=@cwe.2"), ("kind", "=@kind")]),
    (
        ["cwe", "kind"],
        [("typed", "=@cwe.3"), ("again", "=join('-', @typed, @kind)"), ("kind", "=@cwe.2")],
        [("code", "=@cwe.1"), ("seen", "=@again"), ("kind", "=@kind"), ("outer", "=@outer")],
    ),
    (["a", "a", "b"], [("c", "=@a")], [("a", "=@a"), ("b", "=@b"), ("c", "=@c")]),
]
ARGUMENTS = [
    [],
    ["GLU^血糖^LN"],
    ["GLU^血糖^LN", "lab"],
    ["GLU^血糖^LN", "lab", "extra", "more"],
]


def shown(values: Any) -> Any:
    if isinstance(values, dict):
        return {k: shown(v) for k, v in values.items()}
    if isinstance(values, v2.Node):
        return (v2.Node, values.text, values.location)
    return values


@pytest.mark.parametrize("params, lets, body", TEMPLATES)
@pytest.mark.parametrize("arguments", ARGUMENTS)
def test_a_datatype_applies_as_the_former_closure(
    params: list[str], lets: list[tuple[str, str]], body: list[tuple[str, str]], arguments: list
) -> None:
    results = []
    for made in (datatype_fn, former_apply):
        template = DatatypeTemplate(
            "t",
            "t.yaml",
            list(params),
            [(name, value(text)) for name, text in lets],
            DictNode([(key, value(text)) for key, text in body], dynamic=True),
        )
        ev = evaluation(hl7(*SEGMENTS))
        ev.vars.update({"outer": "caller", "kind": "caller-kind"})
        (obx,) = [s for s in ev.scope.segments if s.name == "OBX"]
        args = [v2.Node(obx, 3, 1, None, None, ev.state.source.tracker) if a.startswith("GLU")
                else a for a in arguments]  # fmt: skip
        before = dict(ev.vars)
        built = made(template)(ev, args)
        tracker = ev.state.source.tracker
        assert ev.vars == before  # the caller's variables are not changed
        results.append((shown(built), sorted(tracker.parts), sorted(tracker.marked)))
    assert results[0] == results[1]


def test_a_datatype_function_is_made_once_and_named_by_generated_names() -> None:
    template = DatatypeTemplate(
        "t", "t.yaml", ["x; import os", "x"], [], DictNode([("v", value("=@x"))], dynamic=True)
    )
    made = datatype_fn(template)
    assert datatype_fn(template) is made
    assert "import" not in next(s for s in closures._CODE if "given" in s)
    assert made(evaluation(), ["a", "b"]) == {"v": "b"}
    assert made(evaluation(), ["a"]) is None


# -- exact types first ------------------------------------------------------------------------


class TextList(list):
    pass


class TextDict(dict):
    pass


def test_join_reads_lists_texts_and_positions_as_before() -> None:
    ev = evaluation(hl7(*SEGMENTS))
    (pid,) = [s for s in ev.scope.segments if s.name == "PID"]
    position = ev.state.source.resolve(v2.compile_path("PID-5"), ev.scope)
    assert type(position) is v2.ReadNode
    assert join(ev, "-", " a ", position, ["b", " ", position]) == "a-张-b-张"
    assert join(ev, "-", TextList(["x", "y"]), "z") == "x-y-z"
    assert join(ev, "/", v2.Node(pid, 3, 2)) == "P2"


def test_dig_reads_dicts_and_lists_as_before() -> None:
    body = {"a": {"b": [{"c": "x"}]}, "l": [[1]], "d": TextDict(e="y")}
    assert _dig(body, "a.b.c") == "x"
    assert _dig(body, "d.e") == "y"
    assert _dig(body, "l.x") is None
    assert _dig(body, "a.z.c") is None
    assert _dig({"a": []}, "a.b") is None


def test_a_steps_kind_is_what_the_isinstance_tests_said() -> None:
    class OwnLet(LetStep):
        pass

    for kind in (LetStep, EachStep, BundleStep, ResourceStep):
        assert _STEP_KINDS[kind] is kind
    step = object.__new__(OwnLet)
    assert type(step) not in _STEP_KINDS and _step_kind(step) is LetStep
    assert _step_kind("not a step") is None


class Big(int):
    pass


@pytest.mark.parametrize(
    "number",
    [1, True, False, 2**63, -(2**63) - 1, 2**63 - 1, 1.5, math.nan, math.inf, Big(2**70), Big(3)],
)
def test_the_checks_numbers_give_the_issues_they_gave(number: Any) -> None:
    resource = {"resourceType": "Observation", "id": "o1", "valueInteger": number}
    issues = checks.check_resources([resource])
    finite = not isinstance(number, float) or math.isfinite(number)
    in_range = not isinstance(number, int) or -(2**63) <= number <= 2**63 - 1
    assert [(i.diagnostics, i.expression) for i in issues] == (
        []
        if finite and in_range
        else [("Observation/o1: not a finite number", "Observation.valueInteger")]
        if not finite
        else [("Observation/o1: integer beyond 64 bits", "Observation.valueInteger")]
    )

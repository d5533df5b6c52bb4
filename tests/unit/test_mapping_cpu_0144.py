"""Decision 0144: the translation's shortcuts give what the code they replace gave.

- a field's first-repetition components kept per segment (``Segment.first_components``)
  are what ``Segment.get(field, 1, c, 1)`` gives;
- a path's read plan (``Hl7Path._rep1``, ``_comp1``, ``_simple``) and ``Node.child``
  without ``__init__``;
- a path read again in one generated function gives the first read's value (``_Reads``):
  the same values, read record and issues as reading it again, whatever ran or not;
- a template's lets bound by one generated function (``lets_function``);
- a call's or variable's value kept in a dict or a list (``_Builder.value_kept``): kept
  or dropped, and made, as the former normalisation and tests did;
- ``@original`` worked out only for a message mapping that can read it
  (``context_reads.variables_read``, ``TranslationContext.variables_for``);
- groups walked as a list, a segment scope without ``__init__``, a segment's shape check.
"""

from __future__ import annotations

import inspect
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from adapter.errors import ParseError
from adapter.hl7v2 import Segment
from adapter.hl7v2.parser import _check_shape
from adapter.input_limits import InputLimits
from adapter.mapping import closures, context_reads
from adapter.mapping import hl7v2_paths as v2
from adapter.mapping.closures import _built, _inline, _made, _Reads, build_fn, lets_function
from adapter.mapping.expressions import Var, compile_value
from adapter.mapping.functions import FUNCTIONS
from adapter.mapping.loader import load_mapping_set
from adapter.mapping.nodes import DictNode, ListNode
from adapter.mapping.values import TEXT_DECIDES, is_empty
from tests.unit.mapping_support import context, evaluation, hl7

MAPPINGS = Path(__file__).resolve().parents[2] / "mappings"

VALUES = [
    "", " ", "a", " a ", "^", "^a", "a^", "^ ", " ^b", "a~b", "~b", "&x", "a&b^c",
    "\\F\\", "\\S\\x", "^^^", "a^b^c~d^e", "&", "~", " ~ ", "x\\T\\y^z", "a^^c^",
]  # fmt: skip


def shapes(value: str) -> list[Segment]:
    """OBX-5 holding ``value`` in a flat segment (when the value is) and in a deep one."""
    flat = hl7("OBX|1|ST|C^code||" + value).segments[1]
    deep = hl7("OBX|1|ST|C^code||" + value + "|||H~L").segments[1]
    return [flat, deep]


@pytest.mark.parametrize("value", VALUES)
def test_first_components_are_what_get_gives(value: str) -> None:
    for segment in shapes(value):
        for field_no in (1, 2, 3, 5, 8, 9, 30):
            for _ in range(2):  # the second time from the segment's cache
                comps = segment.first_components(field_no)
                for comp in range(1, 8):
                    want = segment.get(field_no, 1, comp, 1)
                    got = comps[comp - 1] if comp <= len(comps) else ""
                    assert got == want, (value, field_no, comp)
    msh = hl7("OBX|1").segments[0]
    for field_no in (1, 2, 9, 12):
        comps = msh.first_components(field_no)
        for comp in range(1, 4):
            assert (comps[comp - 1] if comp <= len(comps) else "") == msh.get(field_no, 1, comp)


PATHS = [
    "OBX", "OBX-5", "OBX-5.1", "OBX-5.2", "OBX-5.0", "OBX-5[1]", "OBX-5[1].2", "OBX-5[2]",
    "OBX-5[0]", "OBX-5.2.1", "OBX-5.2.2", "OBX-5.1.0", "OBX-0", "OBX-9.2", "OBX-5[*]",
]  # fmt: skip


def test_a_paths_read_plan() -> None:
    for text in PATHS:
        path = v2.compile_path(text)
        assert path._rep1 == (path.rep or 1)
        assert path._comp1 == (path.comp or 1)
        simple = path.field is not None and path.field > 0 and (path.rep or 1) == 1
        assert path._simple == (simple and (path.sub or 1) == 1)
        # the plan is no part of what a path is
        assert path == v2.Hl7Path(path.segment, path.field, path.rep, path.comp, path.sub)


@pytest.mark.parametrize("value", VALUES)
def test_child_is_the_node_init_makes(value: str) -> None:
    for segment in shapes(value):
        tracker = v2.ReadTracker()
        field = v2.Node(segment, 5, 1, None, None, tracker)
        for index in (1, 2, 3):
            made = field.child(index)
            want = v2.Node(segment, 5, 1, index, None, tracker)
            for slot in ("segment", "field", "rep", "comp", "sub", "tracker", "_text"):
                assert getattr(made, slot) == getattr(want, slot), slot
            assert made.text == want.text and made.is_empty() == want.is_empty()
            assert field.child(index) is made
            below = made.child(2)
            assert (below.comp, below.sub, below.text) == (index, 2, want.child(2).text)
            with pytest.raises(ValueError, match="below subcomponent"):
                below.child(1)


# -- a path read again in one generated function -------------------------------------------

EXPRESSIONS = [
    "=all(exists(OBX-5), not(is_numeric(OBX-5)), not(has_comparator(OBX-5)))",
    "=when(exists(OBX-6.3), OBX-6.3)",
    "=join('.', OBX-4.1, when(exists(OBX-4.2), OBX-4.2), OBX-4.2, OBX-4.1)",
    "=join('-', when(exists(OBX-8), OBX-8), OBX-8, when(eq(OBX-8, 'H'), OBX-8))",
    "=any(eq(OBX-2, 'NM'), all(exists(OBX-5), eq(OBX-5, OBX-5)), exists(OBX-5))",
    "=all(eq(OBX-2, 'X'), exists(OBX-7), OBX-7)",
    "=first(OBX-5, OBX-5.1, OBX-5)",
    "=when(any(exists(OBX-9), exists(OBX-10)), join('/', OBX-9, OBX-10, OBX-9))",
    "=upper(trim(OBX-2))",
    "=one_of(upper(trim(OBX-10)), 'A', 'N', OBX-10)",
    "=empty(OBX-5.3)",
    "=not(exists(OBX-11))",
    "=eq(map('flags', OBX-8), OBX-8)",
]

MESSAGES = [
    ("OBR|1|P1|F1|GLU||||20261120080000", "OBX|1|NM|GLU^血糖^L||5.6|mmol/L^^UCUM|||H"),
    ("ORC|NW|P2|F2", "OBR|1|||CBC", "OBX|1|ST|WBC||  ||||H||X||||20261120090000"),
    ("OBR|1|P3||X|||20261120070000", "OBX|1|CWE|A^^^B^^^^^原文|2^7|POS^阳性|^mg/dL|||N"),
    ("OBR|1", "OBX|1|NM|||5.6~7.1|mmol/L^millimole^UCUM||5.6|hh|A"),
    ("OBR|1", "OBX|1|SN|||<^5|||||D"),
]


def run_expression(text: str, segments: tuple[str, ...], reads: _Reads | None) -> tuple:
    from tests.unit.mapping_support import table

    node = compile_value(text, v2.compile_path, set(FUNCTIONS))
    names: dict[str, Any] = {"truthy": closures.truthy}
    if type(node).__name__ == "Call" and closures._inlined(node):
        code = _inline(node, names, reads=reads)
        fn = _made(f"lambda ev: {code}", names)
    else:
        fn = closures.expr_fn(node)
    flags = table("flags", {"codes": {"H": "high", "N": "normal"}})
    ev = evaluation(hl7(*segments), {"flags": flags})
    value = fn(ev)
    tracker = ev.state.source.tracker
    shown = value.text if isinstance(value, v2.Node) else value
    return (
        shown,
        value.location if isinstance(value, v2.Node) else None,
        sorted(tracker.parts),
        sorted(tracker.marked),
        sorted(tracker.resolved),
        [(i.severity, i.diagnostics, i.location) for i in ev.state.issues],
    )


@pytest.mark.parametrize("segments", MESSAGES)
@pytest.mark.parametrize("text", EXPRESSIONS)
def test_a_path_read_again_gives_what_reading_it_again_gives(
    text: str, segments: tuple[str, ...]
) -> None:
    assert run_expression(text, segments, _Reads()) == run_expression(text, segments, None)


def test_a_read_is_used_again_only_where_it_surely_ran() -> None:
    names: dict[str, Any] = {"truthy": closures.truthy}
    text = "=join('.', when(exists(OBX-4.2), OBX-4.2), OBX-4.2, OBX-4.2)"
    node = compile_value(text, v2.compile_path, set(FUNCTIONS))
    code = _inline(node, names, reads=_Reads())
    # read in the when's condition (p1), which runs first: its value and what follows use it
    assert code.count(":=") == 1 and code.count("p1") == 4
    text = "=join('.', when(exists(OBX-3), OBX-4.2), OBX-4.2, OBX-4.2)"
    node = compile_value(text, v2.compile_path, set(FUNCTIONS))
    code = _inline(node, names, reads=_Reads())
    # read in the when's value (p2: a branch that may not run), then read again after it
    # (p3), which what follows uses
    assert code.count(":=") == 3
    assert code.count("p2") == 1 and code.count("p3") == 2
    # a source that does not say its reads are remembered is read where written
    plain = compile_value("=join('.', @x, @x)", v2.compile_path, set(FUNCTIONS))
    assert ":=" not in _inline(plain, {}, reads=_Reads())


@pytest.mark.parametrize("segments", MESSAGES)
def test_lets_bound_by_one_function_are_the_lets_one_by_one(segments: tuple[str, ...]) -> None:
    texts = [
        ("code", "=OBX-3.1"),
        ("value", "=OBX-5"),
        ("has_value", "=exists(OBX-5)"),
        ("again", "=@value"),
        ("chosen", "=first(OBX-9, OBX-5.2, OBX-5)"),
        ("flag", "=when(all(empty(OBX-8.2), exists(OBX-8)), OBX-8)"),
        ("both", "=join('-', @code, OBX-3.1, @flag)"),
        ("part", "=@value.1"),
        ("fixed", "literal"),
    ]
    lets = [(name, compile_value(text, v2.compile_path, set(FUNCTIONS))) for name, text in texts]
    results = []
    for one_function in (True, False):
        ev = evaluation(hl7(*segments))
        if one_function:
            lets_function(lets)(ev)
        else:
            for name, value in lets:
                ev.vars[name] = closures.let_fn(value)(ev)
        tracker = ev.state.source.tracker
        shown = {
            k: (v.text, v.location) if isinstance(v, v2.Node) else v for k, v in ev.vars.items()
        }
        results.append((shown, sorted(tracker.parts), sorted(tracker.marked)))
    assert results[0] == results[1]


# -- a value kept in a dict or a list ------------------------------------------------------


def old_dict_keeps(ev: Any, value: Any) -> tuple[bool, Any]:
    """The builder's lines before decision 0144: the value normalised, then the dict's test."""
    if type(value) is str:
        value = value.strip() or None
    elif type(value) in TEXT_DECIDES:
        value = value.text.strip() or None
    elif value is not None and type(value) is not dict:
        value = _built(ev, value)
    kept = value is not None and bool(value or not (value == "" or value == [] or value == {}))
    return kept, value


def old_list_keeps(ev: Any, value: Any) -> tuple[bool, Any]:
    if type(value) is str:
        value = value.strip() or None
    elif type(value) in TEXT_DECIDES:
        value = value.text.strip() or None
    elif value is not None and type(value) is not dict:
        value = _built(ev, value)
    return value is not None and not is_empty(value), value


@pytest.mark.parametrize("line", ["OBX|1|ST|C||x^ y ^|^mmol/L", "OBX|1|ST|C|| ^|&u~v"])
def test_a_value_is_kept_as_the_former_tests_kept_it(line: str) -> None:
    count = len(kept_values_in(evaluation(hl7(line))))
    for i in range(count):
        for into in ("dict", "list"):
            ev = evaluation(hl7(line))
            ev.vars["x"] = kept_values_in(ev)[i]
            if into == "dict":
                node: Any = DictNode([("k", Var("x", ()))], dynamic=True)
                built = build_fn(node)(ev)
                got = (built is not None, built["k"] if built else None)
            else:
                node = ListNode([Var("x", ())])
                built = build_fn(node)(ev)
                got = (built is not None, built[0] if built else None)
            issues_new = [(i.severity, i.diagnostics) for i in ev.state.issues]
            reference = evaluation(hl7(line))
            value = kept_values_in(reference)[i]
            kept, want = (old_dict_keeps if into == "dict" else old_list_keeps)(reference, value)
            issues_old = [(i.severity, i.diagnostics) for i in reference.state.issues]
            assert got == (kept, want if kept else None), (i, into, value)
            assert issues_new == issues_old, (i, into)
            assert sorted(ev.state.source.tracker.parts) == sorted(
                reference.state.source.tracker.parts
            )


def kept_values_in(ev: Any) -> list[Any]:
    """``kept_values`` read in ``ev``'s message (its positions read through ``ev``)."""
    obx5 = ev.state.source.resolve(v2.compile_path("OBX-5"), ev.scope)
    obx6 = ev.state.source.resolve(v2.compile_path("OBX-6"), ev.scope)
    segment = ev.state.source.resolve(v2.compile_path("OBX"), ev.scope)
    return [
        "", " ", "a", " a ", {}, {"x": 1}, [], [""], ["a", " "], [" b ", None], 0, 0.0, 1.5,
        False, True, Decimal("0"), Decimal("2.50"), None, obx5, obx6, obx5.child(1),
        obx5.child(2), obx6.child(3), segment,
    ]  # fmt: skip


# -- @original only for a mapping that can read it -------------------------------------------


def test_variables_read_tells_which_mappings_read_original() -> None:
    mappings = load_mapping_set(MAPPINGS, "yunyi-lis")
    bucket = mappings.formats["hl7v2"]
    oru = mappings.message_for("hl7v2", "ORU^R01")
    referral = mappings.message_for("hl7v2", "REF^I12")
    assert oru is not None and referral is not None
    reads = context_reads.variables_read(bucket, oru)
    assert reads is not None and "original" not in reads
    assert {"facility", "lab", "patient"} <= reads
    referral_reads = context_reads.variables_read(bucket, referral)
    assert referral_reads is not None and "original" in referral_reads
    assert context_reads.variables_read(bucket, oru) is reads  # kept per mapping


def test_original_is_worked_out_once_and_only_when_read() -> None:
    mappings = load_mapping_set(MAPPINGS, "yunyi-lis")
    bucket = mappings.formats["hl7v2"]
    oru = mappings.message_for("hl7v2", "ORU^R01")
    referral = mappings.message_for("hl7v2", "REF^I12")
    made: list[int] = []

    def original() -> dict[str, Any]:
        made.append(1)
        return {"sha256": "x"}

    ctx = context()
    ctx.deferred = {"original": original}
    assert "original" not in ctx.variables_for(bucket, oru)  # type: ignore[arg-type]
    assert made == []
    for _ in range(3):  # rows of one file: worked out once
        assert ctx.variables_for(bucket, referral)["original"] == {"sha256": "x"}  # type: ignore[arg-type]
    assert made == [1]


def test_a_mapping_the_walk_does_not_know_reads_every_variable() -> None:
    mappings = load_mapping_set(MAPPINGS, "yunyi-lis")
    bucket = mappings.formats["hl7v2"]
    oru = mappings.message_for("hl7v2", "ORU^R01")
    assert oru is not None
    odd = type(oru)(**{f: getattr(oru, f) for f in oru.__dataclass_fields__})
    odd.name = "odd"
    odd.steps = [*oru.steps, object()]
    assert context_reads.variables_read(bucket, odd) is None
    made: list[int] = []
    ctx = context()
    ctx.deferred = {"original": lambda: made.append(1) or {}}
    assert "original" in ctx.variables_for(bucket, odd)
    assert made == [1]


def test_every_function_reading_the_variables_itself_is_listed() -> None:
    for name, function in FUNCTIONS.items():
        module = inspect.getsource(inspect.getmodule(function))  # type: ignore[arg-type]
        if ".vars" in module:
            assert name in context_reads.FUNCTION_READS, name


# -- groups, segment scopes, the shape check --------------------------------------------------


def test_groups_walked_as_a_list_in_walks_order() -> None:
    mappings = load_mapping_set(MAPPINGS, "yunyi-lis")
    oru = mappings.message_for("hl7v2", "ORU^R01")
    assert oru is not None
    message = hl7(
        "PID|1||P1", "OBR|1|A||X", "OBX|1|ST|C||a", "NTE|1||n", "OBX|2|ST|C||b",
        "OBR|2|B||Y", "OBX|1|ST|C||c", "SPM|1|S1", "OBX|1|ST|D||d", "PID|2||P2", "OBR|3|C||Z",
    )  # fmt: skip
    root, _ = v2.build_groups(message, oru.structure)
    assert root.walk_list() == list(root.walk())
    assert len(root.walk_list()) > 8


def test_a_segment_scope_is_the_group_init_makes() -> None:
    message = hl7("OBR|1", "NTE|1||a", "NTE|2||b")
    parent = v2.Group(v2.GroupSpec("MESSAGE", []), None, segments=list(message.segments))
    for segment in message.segments_named("NTE"):
        scope = v2.segment_scope(segment, parent)
        want = v2.Group(v2.GroupSpec(segment.name, []), parent, segments=[segment])
        assert (scope.spec.name, scope.spec.children) == (want.spec.name, want.spec.children)
        for name in ("parent", "segments", "groups", "position", "found"):
            assert getattr(scope, name) == getattr(want, name), name
        assert scope.find_segment("NTE") is segment and scope.find_segment("OBR") is not None


@pytest.mark.parametrize(
    ("fields", "over"),
    [
        (["OBX", "1", "a" * 30], None),  # long, but no more repetitions or components
        (["OBX", "1", "^".join("c" * 4 for _ in range(5))], None),
        (["OBX", "1", "^" * 6], "components"),
        (["OBX", "1", "~" * 5 + "x" * 20], "repetitions"),
        (["OBX", "1", "&" * 6], "subcomponents"),
        (["OBX", "x" * 3, "a^b"], None),
    ],
)
def test_a_segments_shape_is_checked_as_before(fields: list[str], over: str | None) -> None:
    limits = InputLimits(fields=50, repetitions=5, components=5)
    delimiters = hl7("OBX|1").delimiters
    if over is None:
        _check_shape("OBX", 1, fields, delimiters, limits)
    else:
        with pytest.raises(ParseError, match=over):
            _check_shape("OBX", 1, fields, delimiters, limits)


def test_hl7_v2_paths_say_a_read_again_gives_the_same() -> None:
    assert v2.Hl7Path.same_on_reread is True  # type: ignore[attr-defined]

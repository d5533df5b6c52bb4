"""Decision 0149: the translation's shortcuts give what the code they replace gave.

- the unread report tells a field read by its first part or ``fields_beyond_first``, as
  ``ReadTracker.fields`` told it;
- ``read_path``'s memo keyed by ``Hl7Path._memo`` + the segment index: one key per path
  object and segment, a copied or unpickled path a serial of its own;
- ``one_of`` with literal options and ``eq`` with a literal written as ``one_of_texts`` and
  ``eq_text``: the values ``one_of`` and ``eq`` give;
- segments, groups and iterated nodes made without ``__init__``: what ``__init__`` makes;
- the check's rule of a name met for the first time: the issues as before.
"""

from __future__ import annotations

import copy
import itertools
import pickle
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from adapter.hl7v2 import Segment
from adapter.mapping import closures
from adapter.mapping import hl7v2_paths as v2
from adapter.mapping.closures import _inline, _made, _Reads
from adapter.mapping.expressions import compile_value
from adapter.mapping.formats.hl7v2 import Hl7v2Format
from adapter.mapping.functions import FUNCTIONS
from adapter.mapping.functions.logic import eq_text, one_of_texts
from adapter.mapping.loader import load_mapping_set
from adapter.pipeline import checks
from tests.unit.mapping_support import evaluation, hl7, node

MAPPINGS = Path(__file__).resolve().parents[2] / "mappings"

# -- the unread report's test of a field read -------------------------------------------------

PART_SETS = [
    set(),
    {(0, 3, 1, 1)},
    {(0, 3, 1, 2)},
    {(0, 3, 2, 1), (1, 5, 1, 1)},
    {(2, 6, 1, 3), (2, 6, 1, 1), (2, 7, 3, 2), (4, 1, 1, 1)},
    set(itertools.product(range(3), range(1, 5), range(1, 3), range(1, 3))),
]


@pytest.mark.parametrize("parts", PART_SETS)
def test_a_field_is_read_when_its_first_part_or_a_part_beyond_it_is(parts: set) -> None:
    tracker = v2.ReadTracker()
    tracker.parts.update(parts)
    beyond = tracker.fields_beyond_first()
    fields = tracker.fields
    for index in range(5):
        for field_no in range(1, 9):
            told = (index, field_no, 1, 1) in parts or (index, field_no) in beyond
            assert told == ((index, field_no) in fields), (index, field_no)
    assert beyond <= fields


ORU = [
    ("PID|1||P1^^^H^MR~I2^^^N^NI||张^三||19800101|M", "OBR|1|P1|F1|GLU^血糖|||20261120080000",
     "OBX|1|NM|GLU^血糖^L||5.6|mmol/L^^UCUM|3.9-6.1|H|||F", "NTE|1||note"),
    ("PID|1||P2", "ORC|NW|P2|F2", "OBR|1|||CBC", "OBX|1|ST|WBC^^^W2||x~y|^mg/dL||A||X|F",
     "OBX|2|CWE|A^^^B^^^^^原文|2^7|POS^阳性|||N|||F", "ZXX|1|a^b|c"),
]  # fmt: skip


@pytest.mark.parametrize("segments", ORU)
def test_the_unread_report_is_what_the_fields_set_gave(segments: tuple[str, ...]) -> None:
    """The ORU mapping's reads of real messages: the report as the former test (``(index,
    field) in tracker.fields``) gives it, with the tracker's sets as they are."""
    from tests.unit.mapping_support import translate

    mappings = load_mapping_set(MAPPINGS, "yunyi-lis")
    message = hl7(*segments)
    oru = mappings.message_for("hl7v2", "ORU^R01")
    assert oru is not None
    translate(mappings, message)  # a translation of it reports
    fmt = Hl7v2Format()
    source, root, _ = fmt.start(message, oru)
    for group in root.walk_list():  # read a sample of fields and parts, as rules would
        for segment in group.segments:
            for path in ("-1", "-2", "-3.2", "-5", "-6.3", "-3[2].1"):
                v2.read_path(source.tracker, v2.compile_path(segment.name + path), group)
    got = fmt.unread(message, source, oru)
    fields = source.tracker.fields
    original = v2.ReadTracker.fields_beyond_first
    try:  # the former test: every field read in ``fields``
        v2.ReadTracker.fields_beyond_first = lambda self: fields  # type: ignore[method-assign]
        want = fmt.unread(message, source, oru)
    finally:
        v2.ReadTracker.fields_beyond_first = original  # type: ignore[method-assign]
    assert got == want
    assert got  # the report says something of these messages


# -- the memo's key -----------------------------------------------------------------------


def test_the_memo_key_is_one_per_path_object_and_segment() -> None:
    paths = [v2.compile_path(t) for t in ("OBX-3", "OBX-3.1", "PID-5", "OBR-3.1")]
    paths.append(v2.Hl7Path("OBX", 3))  # equal to the first, another object
    paths.append(copy.copy(paths[0]))
    paths.append(copy.deepcopy(paths[1]))
    paths.append(pickle.loads(pickle.dumps(paths[2])))
    assert paths[4] == paths[0] and paths[5] == paths[0] and paths[7] == paths[2]
    keys = {p._memo + index for p in paths for index in (0, 1, 2, 500, 2**32 - 1)}
    assert len(keys) == len(paths) * 5
    for p in paths:
        assert p._memo % 2**32 == 0 and p._memo > 0
        assert (p._rep1, p._comp1, p._simple) == (
            p.rep or 1,
            p.comp or 1,
            p.field is not None and p.field > 0 and (p.rep or 1) == 1 and (p.sub or 1) == 1,
        )


def test_a_path_read_twice_gives_its_memo() -> None:
    ev = evaluation(hl7("OBR|1", "OBX|1|NM|GLU^x||5.6"))
    tracker, scope = ev.state.source.tracker, ev.scope
    path = v2.compile_path("OBX-3.2")
    first = v2.read_path(tracker, path, scope)
    assert v2.read_path(tracker, path, scope) is first and first.text == "x"
    other = v2.Hl7Path("OBX", 3, None, 2)  # equal, not the same object: its own memo entry
    second = v2.read_path(tracker, other, scope)
    assert second is not first and second.text == "x" and len(tracker.resolved) == 2


# -- one_of and eq with literals -----------------------------------------------------------

VALUES: list[Any] = [
    "NM", " nm ", "ST", "", "  ", None, 5, Decimal("1.0"), ["NM"], {"a": 1}, "ß", "SS", "x",
]  # fmt: skip
OPTIONS = [(), ("NM",), ("NM", "SN", "ST"), (" nm ", "TX"), ("ss",), ("", "A"), ("1.0", "5")]


def _positions() -> list[Any]:
    out: list[Any] = []
    for text in ("NM", " st ", "", "ß"):
        out.append(node(text))  # a Node
        ev = evaluation(hl7("OBR|1", f"OBX|1|{text}"))
        out.append(v2.read_path(ev.state.source.tracker, v2.compile_path("OBX-2"), ev.scope))
    return out


@pytest.mark.parametrize("options", OPTIONS)
def test_one_of_texts_is_one_of(options: tuple[str, ...]) -> None:
    one_of = FUNCTIONS["one_of"]
    wanted = frozenset(o.strip().casefold() for o in options)
    for value in [*VALUES, *_positions()]:
        assert one_of_texts(None, value, wanted) == one_of(None, value, *options), value  # type: ignore[arg-type]


@pytest.mark.parametrize("literal", ["NM", " NM ", "", " ", "nm", "5", "1.0"])
def test_eq_text_is_eq(literal: str) -> None:
    eq = FUNCTIONS["eq"]
    for value in [*VALUES, *_positions()]:
        assert eq_text(None, value, literal.strip()) == eq(None, value, literal), value  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "literal_form"),
    [
        ("=one_of(OBX-2, 'NM', 'SN')", True),
        ("=one_of(upper(trim(OBX-2)), ' st ', 'TX')", True),
        ("=not(one_of(OBX-10, 'A', 'N'))", True),
        ("=one_of(OBX-2, 'NM', OBX-10)", False),  # an option read: one_of itself
        ("=eq(OBX-2, ' NM ')", True),
        ("=eq(OBX-5.2, '')", True),
        ("=eq('NM', OBX-2)", False),  # the literal first: eq itself
    ],
)
def test_generated_code_calls_the_literal_forms(text: str, literal_form: bool) -> None:
    node_ = compile_value(text, v2.compile_path, set(FUNCTIONS))
    for segments in (("OBR|1", "OBX|1|NM|G||5.6^^x||||A"), ("OBR|1", "OBX|1| st |G||x||||N")):
        names: dict[str, Any] = {"truthy": closures.truthy}
        code = _inline(node_, names, reads=_Reads())
        called = {v for v in names.values() if v in (one_of_texts, eq_text)}
        assert bool(called) == literal_form, code
        ev = evaluation(hl7(*segments))
        got = _made(f"lambda ev: {code}", names)(ev)
        # the reference: the same call through the registered functions, arguments read alike
        ev2 = evaluation(hl7(*segments))
        want = _reference(node_, ev2)
        assert got == want
        assert sorted(ev.state.source.tracker.parts) == sorted(ev2.state.source.tracker.parts)


def _reference(node_: Any, ev: Any) -> Any:
    """The expression evaluated through ``FUNCTIONS`` (no literal forms)."""
    kind = type(node_).__name__
    if kind == "Literal":
        return node_.value
    if kind == "Path":
        return ev.state.source.resolve(node_.compiled, ev.scope)
    args = [_reference(a, ev) for a in node_.args]
    if node_.name == "not":
        return not closures.truthy(args[0])
    return FUNCTIONS[node_.name](ev, *args)


# -- objects made without __init__ ---------------------------------------------------------


def test_a_parsed_segment_is_what_init_makes() -> None:
    message = hl7("OBR|1|a^b", "OBX|1|ST|C~D||x&y", "NTE|1||\\F\\")
    for segment in message.segments:
        want = Segment(
            segment.name, segment.occurrence, segment.index, segment._f, segment._d, segment._flat
        )
        for slot in Segment.__slots__:
            assert getattr(segment, slot) == getattr(want, slot), slot


def test_groups_and_iterated_nodes_are_what_init_makes() -> None:
    mappings = load_mapping_set(MAPPINGS, "yunyi-lis")
    oru = mappings.message_for("hl7v2", "ORU^R01")
    assert oru is not None
    message = hl7("PID|1||P1~P2", "OBR|1|A||X", "OBX|1|ST|C||a", "OBR|2|B||Y", "OBX|1|ST|C||c")
    root, _ = v2.build_groups(message, oru.structure)
    for group in root.walk_list():
        want = v2.Group(group.spec, group.parent, list(group.segments), list(group.groups))
        for name in ("spec", "parent", "segments", "groups", "found"):
            assert getattr(group, name) == getattr(want, name), name
    tracker = v2.ReadTracker()
    for path in ("PID-3", "PID-3.1", "PID-3[2]"):
        compiled = v2.compile_path(path)
        for made in v2.iterate(compiled, root.groups[0], tracker):
            want_node = v2.Node(
                made.segment, made.field, made.rep, compiled.comp, compiled.sub, tracker
            )
            for slot in ("segment", "field", "rep", "comp", "sub", "tracker", "_children"):
                assert getattr(made, slot) == getattr(want_node, slot), slot
            assert made.is_empty() == want_node.is_empty() and made.text == want_node.text


# -- the check: a name met for the first time ----------------------------------------------


def test_a_name_met_first_is_judged_as_a_known_one(monkeypatch: pytest.MonkeyPatch) -> None:
    resource = {
        "resourceType": "Observation",
        "id": "o1",
        "status": "bad  code",
        "issued": "2026-11-20",  # an instant without a time
        "zzNewDate": "2026-13-01",
        "zzNewText": " ",
        "note": [{"zzOtherText": "ok", "zzAnotherDateTime": "x"}],
    }
    for attribute in ("_RULES", "_TOP_RULES", "_TYPES", "_TOP_TYPES"):
        monkeypatch.setattr(checks, attribute, {})
    first = checks.check_resources([resource])
    again = checks.check_resources([resource])
    shown = [(i.diagnostics, i.expression) for i in first]
    assert shown == [(i.diagnostics, i.expression) for i in again]
    assert len(shown) == 5, shown


# -- loops instead of generators, ids, the timezone -------------------------------------------


@pytest.mark.parametrize("count", [0, 1, 2, 5, 6, 7, 11, 12, 13, 40])
@pytest.mark.parametrize("chunk", [1, 2, 3, 6])
def test_lines_are_what_the_generator_gave(count: int, chunk: int) -> None:
    from adapter.hl7v2.parser import _lines

    def reference(text: str) -> list[str]:
        out, rest = [], text
        while True:
            parts = rest.split("\r", chunk)
            if len(parts) <= chunk:
                return out + parts
            rest = parts.pop()
            out.extend(parts)

    text = "\r".join(f"S{i}|x" for i in range(count))
    assert list(_lines(text, chunk)) == reference(text) == text.split("\r")


@pytest.mark.parametrize(
    "parts",
    [["a", "b"], [" a ", "b\t"], ["x"], ["a", "", "b"], ["a", "  "], [], ["关", " 联 "]],
)
def test_a_resource_id_from_parts_stripped_once(parts: list[str]) -> None:
    from adapter.mapping.engine import _resource_id
    from adapter.mapping.ids import deterministic_id

    class Template:
        resource_type = "Observation"
        _ids = (lambda ev: tuple(parts), lambda ev: ("fallback",))

    blank = not parts or any(not p.strip() for p in parts)
    want = deterministic_id("Observation", ["fallback"] if blank else parts)
    assert _resource_id(None, Template) == want  # type: ignore[arg-type]


def test_the_timezone_is_what_the_context_says() -> None:
    from zoneinfo import ZoneInfo

    from adapter.mapping.functions.dates import _timezone

    ev = evaluation(hl7("OBR|1"))
    assert _timezone(ev) is ev.timezone is ev.state.timezone

    class Plain:
        timezone = ZoneInfo("Asia/Urumqi")

    assert _timezone(Plain()) is Plain.timezone

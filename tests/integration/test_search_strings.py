"""PostgreSQL's string values as dictionary ids in the token arrays (decisions 0114, 0117,
adapter/store/search_tokens.py ``string_moves``). Every string search form answers as the
rows did (the searches run on SQLite too, where the rows stay); on PostgreSQL no movable
address or name row is written, a value cut to a key stays a row, one value is one
dictionary row, a text that differs from its normalised form keeps its own row, and each
resource with a name carries that name parameter's presence marker."""

from __future__ import annotations

import importlib
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from adapter.store import save_resources, search_preread
from adapter.store.search_tokens import string_param_moves
from tests.integration.search_pages import every_page, sent_statements

search_module = importlib.import_module("adapter.store.search")  # the package's name is a function
T0 = datetime(2026, 5, 3, 2, 0, tzinfo=UTC)
LONG = "湖南省青山县柳河镇新街村" * 20  # 240 characters: cut to a key, a row beside arrays


def _patient(pid: str, family: str, given: str, line: str, **more: Any) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": pid,
        "name": [{"text": family + given, "family": family, "given": [given]}],
        "address": [{"line": [line], "city": "青山县", "state": "湖南省", "postalCode": "415100"}],
        **more,
    }


def _store(factory: sessionmaker[Session]) -> None:
    bodies: list[dict[str, Any]] = [
        _patient("p1", "张", "伟", "柳河镇新街村5组"),
        _patient("p2", "张", "敏", "石桥镇石桥村五组"),
        _patient("p3", "李", "伟", "柳河镇新街村6组"),
        _patient("p4", "Zhang", "Wei", "Main Street 1"),
        _patient("p5", "zhang", "Min", LONG),
        {"resourceType": "Patient", "id": "p6", "gender": "male"},
        {
            "resourceType": "Observation",
            "id": "o1",
            "status": "final",
            "code": {"text": "note"},
            "subject": {"reference": "Patient/p1"},
            "valueString": "阴性",
        },
        {
            "resourceType": "Observation",
            "id": "o2",
            "status": "final",
            "code": {"text": "note"},
            "subject": {"reference": "Patient/p4"},
            "valueString": "阳性",
        },
    ]
    with factory.begin() as session:
        save_resources(session, bodies, message_id=None, now=T0)


def _ask(factory: sessionmaker[Session], rtype: str, params: list[tuple[str, str]]) -> list[str]:
    return every_page(factory, rtype, params, page_size=2)


CASES: list[tuple[list[tuple[str, str]], list[str]]] = [
    ([("family", "张")], ["p1", "p2"]),
    ([("family", "zhang")], ["p4", "p5"]),
    ([("family:exact", "Zhang")], ["p4"]),
    ([("family:exact", "zhang")], ["p5"]),
    ([("family:exact", "ZHANG")], []),
    ([("name", "张")], ["p1", "p2"]),
    ([("name", "张伟")], ["p1"]),
    ([("name:exact", "张伟")], ["p1"]),
    ([("name:contains", "伟")], ["p1", "p3"]),
    ([("name:contains", "ang")], ["p4", "p5"]),
    ([("given", "w")], ["p4"]),
    ([("given", "伟,敏")], ["p1", "p2", "p3"]),
    ([("address", "柳河镇")], ["p1", "p3"]),
    ([("address", "湖南省")], ["p1", "p2", "p3", "p4", "p5"]),
    ([("address:contains", "新街村")], ["p1", "p3", "p5"]),
    ([("address:contains", LONG[5:30])], ["p5"]),
    ([("address", LONG[:210])], ["p5"]),
    ([("address:exact", LONG)], ["p5"]),
    ([("address-city", "青山")], ["p1", "p2", "p3", "p4", "p5"]),
    ([("address-postalcode", "4151")], ["p1", "p2", "p3", "p4", "p5"]),
    ([("family:missing", "true")], ["p6"]),
    ([("family:missing", "false")], ["p1", "p2", "p3", "p4", "p5"]),
    ([("family", "张"), ("given", "伟")], ["p1"]),
    ([("family", "张"), ("_id", "p2")], ["p2"]),
    ([("family", "张"), ("gender", "male")], []),
    ([("family", "nobody")], []),
    ([("name", "100%")], []),
]


@pytest.mark.parametrize(("params", "expected"), CASES)
def test_string_search_forms(
    session_factory: sessionmaker[Session], params: list[tuple[str, str]], expected: list[str]
) -> None:
    _store(session_factory)
    assert sorted(_ask(session_factory, "Patient", params)) == expected


def test_chains_has_sorts_and_observation_strings(session_factory: sessionmaker[Session]) -> None:
    _store(session_factory)
    f = session_factory
    assert _ask(f, "Observation", [("patient.family", "张")]) == ["o1"]
    assert _ask(f, "Observation", [("patient.name:exact", "ZhangWei")]) == ["o2"]
    assert _ask(f, "Observation", [("value-string", "阳")]) == ["o2"]
    assert _ask(f, "Patient", [("_has:Observation:patient:value-string", "阴性")]) == ["p1"]
    # code-point order of the normalised text; equal values by newest change, then id
    assert _ask(f, "Patient", [("_sort", "family"), ("_id", "p1,p3,p4,p5")]) == [
        "p4",
        "p5",
        "p1",
        "p3",
    ]
    expected_up = _ask(f, "Patient", [("_sort", "family,given")])
    assert expected_up[-1] == "p6"  # no value: last
    down = _ask(f, "Patient", [("_sort", "-family"), ("family:missing", "false")])
    assert down == ["p3", "p1", "p2", "p4", "p5"]
    assert expected_up == ["p5", "p4", "p1", "p2", "p3", "p6"]  # min before wei, 伟 before 敏


def test_an_update_that_changes_a_name_is_found_by_the_new_one(
    session_factory: sessionmaker[Session],
) -> None:
    _store(session_factory)
    changed = _patient("p3", "王", "伟", "柳河镇新街村6组")
    with session_factory.begin() as session:
        save_resources(session, [changed], message_id=None, now=T0 + timedelta(minutes=1))
    assert _ask(session_factory, "Patient", [("family", "李")]) == []
    assert _ask(session_factory, "Patient", [("family", "王")]) == ["p3"]
    assert sorted(_ask(session_factory, "Patient", [("given", "伟")])) == ["p1", "p3"]


def test_string_values_are_array_elements_on_postgresql(
    engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("the arrays are PostgreSQL's; SQLite keeps rows")
    _store(session_factory)
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT p.param, s.value_norm_full IS NOT NULL FROM search_index s"
                " JOIN search_param p ON p.param_id = s.param_id WHERE s.kind = 2"
            )
        ).all()
        # an address or name value moves unless cut to a key (p5's address); texts stay rows
        places = sorted((p, cut) for p, cut in rows if string_param_moves(p))
        assert places == [("address", True)]
        assert {p for p, _ in rows if not string_param_moves(p)} == {"value-string"}
        # a name parameter's presence marker: one dictionary row, in each named resource's array
        marks = conn.execute(
            text(
                "SELECT p.param, array_agg(r.id ORDER BY r.id) FROM search_token d"
                " JOIN search_param p ON p.param_id = d.param_id"
                " JOIN search_terms t ON t.toks @> ARRAY[d.token_id]"
                " JOIN resource r ON r.resource_key = t.resource_key"
                " WHERE d.system_id = -2 GROUP BY p.param ORDER BY p.param"
            )
        ).all()
        named = ["p1", "p2", "p3", "p4", "p5"]
        assert marks == [("family", named), ("given", named), ("name", named)]
        strings = conn.execute(
            text(
                "SELECT p.param, d.code, d.value_norm FROM search_token d JOIN search_param p"
                " ON p.param_id = d.param_id WHERE d.system_id = -1"
            )
        ).all()
        assert all(string_param_moves(p) for p, _, _ in strings)
        assert sum(1 for p, _, v in strings if p == "family" and v == "张") == 1
        # one row per value: 湖南省, 415100 once for five patients
        assert sum(1 for p, _, v in strings if p == "address-state") == 1
        assert sum(1 for p, _, v in strings if p == "address-postalcode") == 1
        lines = sorted((c, v) for p, c, v in strings if p == "address" and "street" in v)
        # the text as written kept where it is not its normalised form
        assert lines == [("Main Street 1", "main street 1")]
        arrays = list(conn.execute(text("SELECT toks FROM search_terms")).scalars())
        assert all(a == sorted(set(a)) for a in arrays)


def _pages(engine: Engine, every: bool = False) -> AbstractContextManager[list[str]]:
    """The page and count statements a search sends (those reading ``resource``; not the
    pre-read, whose member may ask ``resource`` for a deleted one: decision 0127);
    ``every``: every statement."""

    def page(statement: str) -> bool:
        # the pre-read: its first member, or the CTE of a string criterion's ids (0137),
        # of a joint criterion's (0145)
        preread = statement.startswith(("SELECT 0, ", "WITH arrays_ids_", "WITH joint_ids_"))
        return "FROM resource" in statement and not preread

    return sent_statements(engine, None if every else page)


@pytest.mark.parametrize("few", [search_preread.FEW_ROWS, 1])
def test_string_rows_few_by_key_else_the_planner_chooses(
    engine: Engine,
    session_factory: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
    few: int,
) -> None:
    # PostgreSQL: a prefix or :exact of rows that stay rows (value-string), counted in the
    # pre-read; at most FEW_ROWS rows: the page probes the resources by key (the rows' keys
    # hidden from the planner, ``unnest(array(...))``); more: the rows as a plain IN. Same
    # answers.
    monkeypatch.setattr(search_preread, "FEW_ROWS", few)
    monkeypatch.setattr(search_module, "FEW_ROWS", few)
    _store(session_factory)
    f = session_factory
    with _pages(engine) as sent:
        assert sorted(_ask(f, "Observation", [("value-string", "阴,阳")])) == ["o1", "o2"]
        assert _ask(f, "Observation", [("value-string:exact", "阳性")]) == ["o2"]
        both = [("value-string", "阴,阳"), ("status", "final")]
        assert sorted(_ask(f, "Observation", both)) == ["o1", "o2"]
    hidden = [s for s in sent if "unnest(array((select search_index" in s]
    if engine.dialect.name != "postgresql":
        assert not hidden  # SQLite: as before
    elif few > 1:
        assert len(hidden) == len([s for s in sent if "search_index" in s])
    else:  # :exact=阳性 has one row: by key; the prefixes have two
        plain = [s for s in sent if "search_index" in s and s not in hidden]
        assert plain and all("like" in s for s in plain)
        assert hidden and not any("like" in s for s in hidden)


@pytest.mark.parametrize("few", [search_preread.FEW_ROWS, 1])
def test_name_arrays_few_by_key_else_the_planner_chooses(
    engine: Engine,
    session_factory: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
    few: int,
) -> None:
    # PostgreSQL (decisions 0117, 0127): a name criterion's arrays read in the pre-read; at
    # most FEW_ROWS: the page probes the resources by the keys it read (bound, hidden from
    # the planner: ``= any (cast((select cast($keys as bigint[])) ...))``, one index scan,
    # decision 0145); more: the planner's semi-join.
    monkeypatch.setattr(search_preread, "FEW_ROWS", few)
    monkeypatch.setattr(search_module, "FEW_ROWS", few)
    _store(session_factory)
    f = session_factory
    with _pages(engine) as sent:
        assert sorted(_ask(f, "Patient", [("family", "张")])) == ["p1", "p2"]
        assert _ask(f, "Patient", [("name:exact", "张伟")]) == ["p1"]
        assert _ask(f, "Observation", [("patient.family", "张")]) == ["o1"]
        assert sorted(_ask(f, "Patient", [("family", "张"), ("given", "伟,敏")])) == ["p1", "p2"]
    hidden = [s for s in sent if "= any (cast((select cast(%(" in s and "as bigint[])" in s]
    if engine.dialect.name != "postgresql":
        assert not hidden  # SQLite: rows
    elif few > 1:
        assert hidden and all("from resource" not in s or s in hidden for s in sent[:1])
    else:  # name:exact=张伟 is one array: by key; family=张 two
        assert hidden
        assert any("search_terms" in s and s not in hidden for s in sent)


def test_a_prefix_of_many_address_values_finds_each_once(
    engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    # more distinct values than search_tokens.MANY_IDS: a GIN probe per id with the ids
    # hidden from the planner; a cut value (a row) meets it beside them
    _store(session_factory)
    bodies = [_patient(f"v{n:02d}", "刘", "洋", f"柳河镇新街村{n}组") for n in range(40)]
    with session_factory.begin() as session:
        save_resources(session, bodies, message_id=None, now=T0 + timedelta(minutes=1))
    wanted = sorted(["p1", "p3", *(b["id"] for b in bodies)])
    with _pages(engine, every=True) as sent:  # the probe per id: in the pre-read (0127)
        assert sorted(_ask(session_factory, "Patient", [("address", "柳河镇")])) == wanted
    per_id = any("@> array[many_id]" in s.lower() for s in sent)
    assert per_id == (engine.dialect.name == "postgresql")
    found = _ask(session_factory, "Patient", [("address:contains", "新街村")])
    assert sorted(found) == sorted([*wanted, "p5"])
    both = _ask(session_factory, "Patient", [("address", "柳河镇"), ("given", "伟")])
    assert sorted(both) == ["p1", "p3"]


FAMILIES = ["张", "王", "李", "赵", "陈", "刘", "杨", "黄", "周", "吴", "Zhang", "zhang", "范"]
SORTS = ["family", "-family", "given", "-given", "name", "-name", "family,given", "-family,_id"]
SORTS += ["given,-_lastUpdated", "family,-given"]


def _named_store(factory: sessionmaker[Session], *, cut: bool = False) -> None:
    """40 Patients over 13 families (more than the walk reads one by one), some with two
    names, some without; later ones updated (other last changes); ``cut``: one family
    cut to a key (the walk then does not apply: a row places it)."""
    bodies: list[dict[str, Any]] = []
    for n in range(40):
        family = FAMILIES[(n * 7) % len(FAMILIES)]
        given = "伟敏秀英芳娜"[n % 6] + ("" if n % 3 else "华")
        body = _patient(f"n{n:02d}", family, given, f"柳河镇新街村{n % 5}组")
        body["gender"] = "male" if n % 2 else "female"
        if n % 5 == 0:  # a second name: sorts by its lowest or highest
            body["name"].append({"family": FAMILIES[(n + 3) % len(FAMILIES)], "given": ["明"]})
        if n % 11 == 0:
            del body["name"]
        bodies.append(body)
    if cut:
        bodies.append(_patient("n99", LONG, "伟", "柳河镇新街村1组"))
    with factory.begin() as session:
        save_resources(session, bodies[:25], message_id=None, now=T0)
        save_resources(session, bodies[25:], message_id=None, now=T0 + timedelta(minutes=5))


@pytest.mark.parametrize(("one_by_one", "cut"), [(8, False), (0, False), (8, True)])
def test_name_sorts_walk_the_dictionary_as_the_generic_sort(
    session_factory: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
    one_by_one: int,
    cut: bool,
) -> None:
    # PostgreSQL (decision 0117): a sort led by a name walks the dictionary's values in
    # order, with or without a criterion; the answers, page by page, are the generic
    # sort's (``_name_walk`` off). ``one_by_one`` 0: the whole type's one-statement walk,
    # a criterion's give-up; ``cut``: a value cut to a key stays a row, no walk
    _named_store(session_factory, cut=cut)
    monkeypatch.setattr(search_module, "_CODES_ONE_BY_ONE", one_by_one)
    criteria: list[list[tuple[str, str]]] = [
        [],
        [("gender", "male")],
        [("family", "张")],
        [("address", "柳河镇新街村1")],
    ]
    walked = {}
    for sort in SORTS:
        for more in criteria:
            params = [("_sort", sort), *more]
            walked[sort, tuple(more)] = _ask(session_factory, "Patient", params)
    monkeypatch.setattr(search_module, "_name_walk", lambda sort: False)
    for (sort, more), found in walked.items():
        params = [("_sort", sort), *more]
        assert found == _ask(session_factory, "Patient", params), params
    # no family: last, newest change first
    assert walked["family", ()][-4:] == ["n33", "n00", "n11", "n22"] or cut


def test_name_missing_alone_reads_the_presence_markers(
    engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    # ``:missing`` as the only criterion: the presence markers on PostgreSQL (decision
    # 0117); with another criterion: each resource's values. The same answers; a resource
    # whose only family is cut to a key has a family
    _named_store(session_factory, cut=True)
    every = ",".join([f"n{n:02d}" for n in range(40)] + ["n99"])
    for name in ("family", "given", "name"):
        for missing in ("true", "false"):
            alone = _ask(session_factory, "Patient", [(f"{name}:missing", missing)])
            both = [(f"{name}:missing", missing), ("_id", every)]
            assert sorted(alone) == sorted(_ask(session_factory, "Patient", both))
            without = {"n00", "n11", "n22", "n33"}
            assert (set(alone) == without) == (missing == "true")
    with _pages(engine) as sent:
        _ask(session_factory, "Patient", [("family:missing", "true")])
    markers = any("valued_terms" in s for s in sent)
    assert markers == (engine.dialect.name == "postgresql")

"""PostgreSQL's token values as dictionary ids in per-resource arrays (decision 0103,
adapter/store/search_tokens.py). Every token search form answers as the rows did (the
searches run on SQLite too, where the rows stay); on PostgreSQL no movable row is written,
each array is sorted and distinct, and one value is one dictionary row."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, event, text
from sqlalchemy.orm import Session, sessionmaker

from adapter.store import save_resources
from adapter.store.search_tokens import moves
from tests.integration.search_pages import every_page

T0 = datetime(2026, 5, 3, 2, 0, tzinfo=UTC)
LOINC, LOCAL = "http://loinc.org", "http://hospital.example/codes"
LONG = "血红蛋白测定" * 40  # a display of 240 characters: cut to a key, a row beside arrays


def _obs(oid: str, patient: str, codings: list[dict[str, Any]], **more: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": more.pop("status", "final"),
        "code": {"coding": codings, **more.pop("code_extra", {})},
        "subject": {"reference": f"Patient/{patient}"},
        "effectiveDateTime": more.pop("at", "2026-05-01T08:00:00+08:00"),
        **more,
    }


def _store(factory: sessionmaker[Session]) -> None:
    bodies: list[dict[str, Any]] = [
        {"resourceType": "Patient", "id": "p1", "gender": "female"},
        {"resourceType": "Patient", "id": "p2", "gender": "male"},
        _obs("o1", "p1", [{"system": LOINC, "code": "718-7", "display": "Hemoglobin"}]),
        _obs("o2", "p1", [{"system": LOCAL, "code": "718-7"}], status="amended"),
        _obs("o3", "p2", [{"code": "718-7"}], at="2026-05-02T08:00:00+08:00"),
        _obs("o4", "p2", [{"system": LOINC, "code": "718-70", "display": "Other"}]),
        _obs("o5", "p1", [{"system": LOINC, "code": "2345-7", "display": LONG}]),
        _obs("o6", "p2", [], code_extra={"text": "Glucose only text"}, status="preliminary"),
        _obs(
            "o7",
            "p1",
            [{"system": LOINC, "code": "2345-7"}, {"system": LOCAL, "code": "GLU"}],
            at="2026-04-30T08:00:00+08:00",
        ),
    ]
    with factory.begin() as session:
        save_resources(session, bodies, message_id=None, now=T0)


def _ask(factory: sessionmaker[Session], rtype: str, params: list[tuple[str, str]]) -> list[str]:
    return every_page(factory, rtype, params, page_size=3)


CASES: list[tuple[list[tuple[str, str]], list[str]]] = [
    ([("code", f"{LOINC}|718-7")], ["o1"]),
    ([("code", "718-7")], ["o1", "o2", "o3"]),
    ([("code", "|718-7")], ["o3"]),
    ([("code", f"{LOCAL}|")], ["o2", "o7"]),
    ([("code", f"{LOINC}|718-7,{LOCAL}|GLU")], ["o1", "o7"]),
    ([("code:not", "718-7")], ["o4", "o5", "o6", "o7"]),
    ([("code:missing", "true")], []),
    ([("code:missing", "false")], ["o1", "o2", "o3", "o4", "o5", "o6", "o7"]),
    ([("code:text", "hemo")], ["o1"]),
    ([("code:text", "glucose")], ["o6"]),
    ([("code:text", LONG[:10])], ["o5"]),
    ([("code", "2345-7")], ["o5", "o7"]),
    ([("code", "2345-7"), ("patient", "Patient/p1")], ["o5", "o7"]),
    ([("code", "718-7"), ("patient", "Patient/p2")], ["o3"]),
    ([("code", "718-7"), ("status", "final"), ("patient", "Patient/p1")], ["o1"]),
    ([("status", "final"), ("patient", "Patient/p2")], ["o3", "o4"]),
    ([("status:not", "final"), ("patient", "Patient/p1")], ["o2"]),
    ([("code", "718-7"), ("_id", "o2")], ["o2"]),
    ([("patient.gender", "male")], ["o3", "o4", "o6"]),
    ([("patient.gender", "male"), ("code", "718-7")], ["o3"]),
]


@pytest.mark.parametrize(("params", "expected"), CASES)
def test_token_search_forms(
    session_factory: sessionmaker[Session], params: list[tuple[str, str]], expected: list[str]
) -> None:
    _store(session_factory)
    assert sorted(_ask(session_factory, "Observation", params)) == expected


def test_has_and_sorts_by_a_token(session_factory: sessionmaker[Session]) -> None:
    _store(session_factory)
    f = session_factory
    assert _ask(f, "Patient", [("_has:Observation:patient:code", "GLU")]) == ["p1"]
    assert sorted(_ask(f, "Patient", [("_has:Observation:patient:status", "amended")])) == ["p1"]
    # ascending by the lowest code, then the newest change and the id; o6 (no code) last
    up = _ask(f, "Observation", [("_sort", "code")])
    assert up == ["o5", "o7", "o1", "o2", "o3", "o4", "o6"]
    down = _ask(f, "Observation", [("_sort", "-code")])
    assert down == ["o7", "o4", "o1", "o2", "o3", "o5", "o6"]
    mine = _ask(f, "Observation", [("patient", "Patient/p1"), ("_sort", "code")])
    assert mine == ["o5", "o7", "o1", "o2"]
    dated = _ask(f, "Observation", [("status", "final"), ("_sort", "-date")])
    assert dated == ["o3", "o1", "o4", "o5", "o7"]


def test_an_update_that_drops_a_code_is_not_found_by_it(
    session_factory: sessionmaker[Session],
) -> None:
    _store(session_factory)
    changed = _obs("o7", "p1", [{"system": LOINC, "code": "2345-7"}])
    with session_factory.begin() as session:
        save_resources(session, [changed], message_id=None, now=T0 + timedelta(minutes=1))
    assert _ask(session_factory, "Observation", [("code", "GLU")]) == []
    assert sorted(_ask(session_factory, "Observation", [("code", "2345-7")])) == ["o5", "o7"]


def test_movable_values_are_array_elements_on_postgresql(
    engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("the arrays are PostgreSQL's; SQLite keeps rows")
    _store(session_factory)
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT p.param, s.code, s.value_norm_full IS NOT NULL FROM search_index s"
                " JOIN search_param p ON p.param_id = s.param_id WHERE s.kind = 1"
            )
        ).all()
        # only the display cut to a key and the text without a code stay rows
        left = sorted(((p, c or "", cut) for p, c, cut in rows if moves(p)), key=repr)
        assert left == [("code", "", False), ("code", "2345-7", True)]
        arrays = conn.execute(text("SELECT toks FROM search_terms WHERE toks <> '{}'")).scalars()
        arrays = list(arrays)
        assert len(arrays) == 9  # each resource has a movable token (gender, status, code)
        assert all(a == sorted(set(a)) for a in arrays)
        pairs = conn.execute(text("SELECT count(*), count(DISTINCT code) FROM search_token"))
        total, codes = pairs.one()
        # 718-7 under three systems, 718-70, 2345-7 (o7's: o5's stays a row), GLU; three
        # statuses; two genders
        assert codes == 4 + 3 + 2 and total == 3 + 1 + 1 + 1 + 3 + 2


def test_a_rolled_back_value_leaves_no_array_and_is_found_once_written(
    engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("the dictionary is PostgreSQL's")
    _store(session_factory)
    new = _obs("o8", "p1", [{"system": LOINC, "code": "9999-9"}])
    with session_factory() as session:
        save_resources(session, [new], message_id=None, now=T0 + timedelta(minutes=1))
        session.rollback()
    assert _ask(session_factory, "Observation", [("code", "9999-9")]) == []
    with session_factory.begin() as session:  # the cached id is committed: written again
        save_resources(session, [new], message_id=None, now=T0 + timedelta(minutes=2))
    assert _ask(session_factory, "Observation", [("code", "9999-9")]) == ["o8"]


def test_a_whole_type_sorted_by_a_token_walks_the_codes(
    engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    """Without a code cut to a key, PostgreSQL walks the dictionary's codes in order
    (``search_token_walk.token_walk``): every resource once, in the rows' order, across pages."""
    bodies = [
        {"resourceType": "Patient", "id": "p1"},
        {"resourceType": "Patient", "id": "p2"},
        _obs("o1", "p1", [{"system": LOINC, "code": "718-7", "display": "Hemoglobin"}]),
        _obs("o2", "p1", [{"system": LOCAL, "code": "718-7"}]),
        _obs("o3", "p2", [{"code": "718-7"}]),
        _obs("o4", "p2", [{"system": LOINC, "code": "718-70"}]),
        _obs("o6", "p2", [], code_extra={"text": "Glucose only text"}),
        _obs("o7", "p1", [{"system": LOINC, "code": "2345-7"}, {"system": LOCAL, "code": "GLU"}]),
    ]
    with session_factory.begin() as session:
        save_resources(session, bodies, message_id=None, now=T0)
    with session_factory.begin() as session:  # a newer change sorts first among equals
        save_resources(
            session,
            [_obs("o3", "p2", [{"code": "718-7"}], status="amended")],
            message_id=None,
            now=T0 + timedelta(minutes=1),
        )
    sent: list[str] = []

    def remember(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        sent.append(statement)

    event.listen(engine, "before_cursor_execute", remember)
    try:
        up = _ask(session_factory, "Observation", [("_sort", "code")])
        down = _ask(session_factory, "Observation", [("_sort", "-code")])
    finally:
        event.remove(engine, "before_cursor_execute", remember)
    assert up == ["o7", "o3", "o1", "o2", "o4", "o6"]
    assert down == ["o7", "o4", "o3", "o1", "o2", "o6"]
    if engine.dialect.name == "postgresql":  # the codes in order (decision 0108)
        assert any("FROM search_token AS d" in s and "GROUP BY d.code" in s for s in sent)


def test_a_whole_type_sorted_by_a_token_and_more_keys_answers_as_the_generic_sort(
    engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    """``_sort=code,-date`` and others on a whole type (decision 0108: code by code on
    PostgreSQL, the page read in one statement past eight codes) in the order of the same
    sort with a criterion every resource meets (the generic path): every page of 3, both
    directions, ties on code and date, a resource with two codes, one without a code or a
    date, and more codes than are read one by one."""
    bodies: list[dict[str, Any]] = [{"resourceType": "Patient", "id": "p1"}]
    for n in range(14):  # 11 codes, three of them twice; dates repeat
        code = f"C{n % 11:02d}"
        at = f"2026-05-{1 + n % 4:02d}T08:00:00+08:00"
        bodies.append(_obs(f"o{n:02d}", "p1", [{"system": LOINC, "code": code}], at=at))
    bodies.append(
        _obs("both", "p1", [{"system": LOINC, "code": "C05"}, {"system": LOCAL, "code": "C01"}])
    )
    bodies.append(_obs("none", "p1", [], code_extra={"text": "no code"}))
    undated = _obs("undated", "p1", [{"system": LOINC, "code": "C03"}])
    del undated["effectiveDateTime"]
    bodies.append(undated)
    with session_factory.begin() as session:
        save_resources(session, bodies, message_id=None, now=T0)
    with session_factory.begin() as session:  # a newer change sorts first among equals
        save_resources(session, [bodies[3]], message_id=None, now=T0 + timedelta(minutes=1))
    every = ("_lastUpdated", "ge2000-01-01")
    for sort in ("code,-date", "-code,date", "code,_id", "-code,-_lastUpdated", "code"):
        walked = _ask(session_factory, "Observation", [("_sort", sort)])
        generic = _ask(session_factory, "Observation", [("_sort", sort), every])
        assert walked == generic, sort
        assert sorted(walked) == sorted(b["id"] for b in bodies[1:])

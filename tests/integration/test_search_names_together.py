"""Several name and address criteria of one search (decision 0134). On PostgreSQL they are
read together in the pre-read (``PreRead.joint``: one read of the arrays meeting every
one); the answer must be the intersection of each criterion's own answer, page by page,
with its totals, whatever the form: prefix, ``:exact``, ``:contains``, a value cut to a
key (a row that stays a row: each criterion on its own again), with ``:missing`` or
another kind of criterion beside them, under a visibility scope, past ``FEW_ROWS`` (the
page's probe of the arrays instead of the keys). SQLite answers the same."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, event
from sqlalchemy.orm import Session, sessionmaker

from adapter.fhir.search_query import parse_search
from adapter.store import care, save_resources, search_preread, search_preshape
from adapter.store.visibility import Visibility
from tests.integration.search_pages import every_page

search_module = importlib.import_module("adapter.store.search")  # the package's name is a function
T0 = datetime(2026, 12, 7, 8, tzinfo=UTC)
LONG = "张" + "长" * 240  # cut to a key: a row that stays a row on PostgreSQL
FAMILIES = ("张", "张", "李", "王", "Zhang", LONG)
GIVENS = ("伟", "伟明", "秀英", "敏", "Wei")
CITIES = ("青山县", "石门县", "青山市")


def _bodies() -> list[dict[str, Any]]:
    bodies: list[dict[str, Any]] = []
    for n in range(60):
        family, given = FAMILIES[n % 6], GIVENS[n % 5]
        body: dict[str, Any] = {"resourceType": "Patient", "id": f"p{n:02d}"}
        if n % 7:  # every seventh without a name (``:missing``)
            body["name"] = [{"text": family + given, "family": family, "given": [given]}]
        if n % 11:
            body["address"] = [{"city": CITIES[n % 3], "line": [f"柳河村{n % 4}组"]}]
        body["gender"] = "female" if n % 2 else "male"
        bodies.append(body)
    return bodies


def _store(factory: sessionmaker[Session]) -> None:
    with factory.begin() as session:
        for n, body in enumerate(_bodies()):  # one by one: _lastUpdated orders the pages
            save_resources(session, [body], message_id=None, now=T0 + timedelta(minutes=n))


def _ids(factory: sessionmaker[Session], params: list[tuple[str, str]], size: int) -> list[str]:
    return every_page(factory, "Patient", params, page_size=size)


COMBINATIONS: list[list[tuple[str, str]]] = [
    [("family", "张"), ("given", "伟")],
    [("family", "张"), ("given", "伟"), ("address-city", "青山")],
    [("family:exact", "张"), ("given:exact", "伟")],
    [("name", "张伟"), ("address", "柳河")],
    [("name:contains", "伟"), ("address-city:exact", "青山县")],
    [("family", "zhang,李"), ("given", "wei,秀")],
    [("family", "张"), ("family", "张长")],  # the long name's prefix: a row that stays a row
    [("family", LONG), ("given", "伟")],
    [("family", "张"), ("given", "nobody")],
    [("family", "张"), ("given", "伟"), ("gender", "male")],
    [("family", "张"), ("address-city", "青山"), ("name:missing", "false")],
    [("given", "伟"), ("address:missing", "true"), ("family", "张")],
    [("family", "张"), ("address-city", "石门"), ("_sort", "given")],
]


@pytest.mark.parametrize("params", COMBINATIONS)
def test_several_criteria_answer_their_intersection(
    session_factory: sessionmaker[Session], params: list[tuple[str, str]]
) -> None:
    _store(session_factory)
    criteria = [p for p in params if not p[0].startswith("_")]
    each = [set(_ids(session_factory, [c], 100)) for c in criteria]
    expected = set.intersection(*each)
    for size in (2, 5, 100):  # paging, every page's total accurate (every_page)
        found = _ids(session_factory, params, size)
        assert set(found) == expected and len(found) == len(expected)
    if all(not p[0].startswith("_") for p in params):  # the default order, newest first
        assert found == sorted(expected, reverse=True)


@pytest.mark.parametrize("params", COMBINATIONS[:6])
def test_several_criteria_past_few_rows(
    session_factory: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
    params: list[tuple[str, str]],
) -> None:
    """More than ``FEW_ROWS`` matches read together: the page probes the arrays with every
    criterion's ids (no keys): the same answer."""
    _store(session_factory)
    expected = _ids(session_factory, params, 3)
    monkeypatch.setattr(search_preread, "FEW_ROWS", 1)
    search_preshape.clear()  # the shapes kept were built with the former FEW_ROWS
    assert _ids(session_factory, params, 3) == expected


@contextmanager
def _sent(engine: Engine) -> Iterator[list[str]]:
    statements: list[str] = []

    def capture(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", capture)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", capture)


def _find(
    factory: sessionmaker[Session],
    params: list[tuple[str, str]],
    count: int = 20,
    scope: Visibility | None = None,
) -> tuple[int | None, list[str]]:
    parsed = parse_search("Patient", params)
    with factory() as session:
        page = search_module.find(
            session, ["Patient"], parsed.criteria, count=count, total=parsed.total, scope=scope
        )
    return page.total, [b["id"] for b in page.bodies]


def test_read_together_in_two_statements(
    engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    """PostgreSQL: the pre-read and the page, nothing else (no count, no arrays read by
    criterion); a value cut to a key (a row meets it): each criterion as before, the same
    answer."""
    _store(session_factory)
    three = [("family:exact", "张"), ("given", "伟"), ("address-city", "青山")]
    with _sent(engine) as statements:
        total, _ = _find(session_factory, [*three, ("_total", "accurate")], count=2)
    assert total == len(set.intersection(*(set(_ids(session_factory, [c], 100)) for c in three)))
    if engine.dialect.name == "postgresql":
        assert len(statements) == 2
        assert "joint_terms" in statements[0] and "few_terms" not in statements[0]
        assert "search_terms" not in statements[1]  # the page by the pre-read's keys
    with _sent(engine) as statements:
        cut = _find(session_factory, [("family", "张"), ("given", "伟"), ("_total", "accurate")])
    assert cut[0] == len(cut[1]) and any(n % 6 == 5 for n in map(lambda i: int(i[1:]), cut[1]))
    if engine.dialect.name == "postgresql":
        assert len(statements) > 2  # a row meets the family: not counted together


def test_read_together_under_a_scope(
    engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    """A visibility scope: the keys read together, the scope on the page and its count."""
    _store(session_factory)
    with session_factory.begin() as session:
        for pid in ("p00", "p01", "p06", "p12", "p30", "p31"):
            care.register(session, pid, "f1", at=T0, detail="test")
    scope = Visibility("f1", T0 + timedelta(days=1))
    params = [("family", "张"), ("given", "伟"), ("_total", "accurate")]
    every = _find(session_factory, params)
    seen = _find(session_factory, params, scope=scope)
    assert seen[1] == [i for i in every[1] if i in {"p00", "p01", "p06", "p12", "p30", "p31"}]
    assert seen[0] == len(seen[1]) and 0 < len(seen[1]) < len(every[1])
    assert _find(session_factory, params, scope=Visibility("f2", T0)) == (0, [])

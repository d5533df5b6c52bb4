"""A string criterion alone takes its total from the arrays its pre-read counted (decision
0127, PostgreSQL): no count statement, the same totals as the count statement's, the
cap of a bounded total kept; a type with a resource marked deleted is counted the way it
was (the arrays of a deleted resource are not known to be gone). SQLite counts as before."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, event, text
from sqlalchemy.orm import Session, sessionmaker

from adapter.fhir.search_query import parse_search
from adapter.store import save_resources, search_total

search_module = importlib.import_module("adapter.store.search")  # the package's name is a function
T0 = datetime(2026, 12, 6, 8, tzinfo=UTC)


def _store(factory: sessionmaker[Session]) -> None:
    names = [("张", "伟"), ("张", "敏"), ("李", "伟"), ("张", "秀英"), ("王", "秀兰")]
    bodies: list[dict[str, Any]] = [
        {
            "resourceType": "Patient",
            "id": f"p{n}",
            "name": [{"text": family + given, "family": family, "given": [given]}],
            "address": [{"city": "青山县" if n % 2 else "石门县"}],
        }
        for n, (family, given) in enumerate(names, start=1)
    ]
    bodies.append({"resourceType": "Patient", "id": "p6", "gender": "male"})
    with factory.begin() as session:
        save_resources(session, bodies, message_id=None, now=T0)


@contextmanager
def _counts(engine: Engine) -> Iterator[list[str]]:
    """The count statements a search sends."""
    sent: list[str] = []

    def capture(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if statement.lower().startswith("select count(*)"):
            sent.append(statement)

    event.listen(engine, "before_cursor_execute", capture)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", capture)


def _find(
    factory: sessionmaker[Session], params: list[tuple[str, str]], count: int = 1
) -> tuple[int | None, list[str], bool]:
    parsed = parse_search("Patient", params)
    with factory() as session:
        page = search_module.find(
            session, ["Patient"], parsed.criteria, count=count, sort=parsed.sort, total=parsed.total
        )
    return page.total, [b["id"] for b in page.bodies], page.has_more


SEARCHES: list[tuple[list[tuple[str, str]], int, int]] = [
    ([("family", "张")], 1, 3),
    ([("family", "张"), ("_total", "accurate")], 1, 3),
    ([("family", "张")], 0, 3),  # _summary=count
    ([("given", "秀")], 1, 2),
    ([("name", "张")], 2, 3),
    ([("name:contains", "伟")], 1, 2),
    ([("address-city", "青山")], 1, 3),
    ([("family", "nobody"), ("_total", "accurate")], 1, 0),
]


@pytest.mark.parametrize(("params", "count", "total"), SEARCHES)
def test_a_name_alone_is_counted_by_its_preread(
    engine: Engine,
    session_factory: sessionmaker[Session],
    params: list[tuple[str, str]],
    count: int,
    total: int,
) -> None:
    _store(session_factory)
    with _counts(engine) as sent:
        found, _, more = _find(session_factory, params, count)
    assert found == total
    if engine.dialect.name == "postgresql":
        assert sent == []  # the arrays counted in the pre-read
    else:  # SQLite: a count statement wherever the page does not show the end
        assert bool(sent) == (count == 0 or more or ("_total", "accurate") in params)


JOINT: list[tuple[list[tuple[str, str]], int, int]] = [
    ([("family", "张"), ("given", "伟,敏")], 1, 2),
    ([("family", "张"), ("given", "伟,敏"), ("_total", "accurate")], 1, 2),
    ([("family", "张"), ("address-city", "青山")], 0, 1),  # _summary=count
    ([("family", "张"), ("given", "秀"), ("address-city", "石门")], 1, 1),
    ([("name", "张"), ("family:exact", "张"), ("address:contains", "门")], 1, 2),
    ([("family", "张"), ("given", "nobody"), ("_total", "accurate")], 1, 0),
]


@pytest.mark.parametrize(("params", "count", "total"), JOINT)
def test_several_names_and_addresses_are_counted_together(
    engine: Engine,
    session_factory: sessionmaker[Session],
    params: list[tuple[str, str]],
    count: int,
    total: int,
) -> None:
    """Several name and address criteria read together in the pre-read (decision 0134):
    its count of the arrays meeting all of them is the total, no count statement."""
    _store(session_factory)
    with _counts(engine) as sent:
        found, _, more = _find(session_factory, params, count)
    assert found == total
    if engine.dialect.name == "postgresql":
        assert sent == []
    else:
        assert bool(sent) == (count == 0 or more or ("_total", "accurate") in params)


def test_a_bounded_total_keeps_its_cap(
    engine: Engine, session_factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    _store(session_factory)
    monkeypatch.setattr(search_total, "COUNT_CAP", 2)
    monkeypatch.setattr(search_module, "COUNT_CAP", 2)
    assert _find(session_factory, [("family", "张")])[0] is None  # 3 matches: past the cap
    assert _find(session_factory, [("given", "秀")])[0] == 2
    accurate = _find(session_factory, [("family", "张"), ("_total", "accurate")])
    assert accurate[0] == 3
    assert _find(session_factory, [("family", "张"), ("given", "伟,秀,敏")])[0] is None
    assert _find(session_factory, [("family", "张"), ("given", "伟,秀")])[0] == 2


def test_more_than_one_criterion_or_a_deleted_resource_is_counted_as_before(
    engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    _store(session_factory)
    with _counts(engine) as sent:  # a name and a column criterion: not read together
        assert _find(session_factory, [("family", "张"), ("_id", "p1,p2,p3")])[0] == 2
    assert len(sent) == 1
    with session_factory.begin() as session:  # as a delete would mark it; its arrays stay
        session.execute(text("UPDATE resource SET deleted = true WHERE id = 'p2'"))
    with _counts(engine) as sent:  # read together (decision 0134), but a resource deleted
        params = [("family", "张"), ("given", "伟,敏"), ("_total", "accurate")]
        total, ids, _ = _find(session_factory, params, 5)
    assert (total, ids, len(sent)) == (1, ["p1"], 1)
    with _counts(engine) as sent:
        total, ids, _ = _find(session_factory, [("family", "张"), ("_total", "accurate")], 5)
    assert (total, sorted(ids)) == (2, ["p1", "p4"])
    assert len(sent) == 1  # the count statement, which reads the deleted flag
    with _counts(engine) as sent:
        assert _find(session_factory, [("family", "张")])[0] == 2
    assert len(sent) == 1

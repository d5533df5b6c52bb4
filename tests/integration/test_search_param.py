"""The (type, parameter, kind) of the search index as integers (decision 0071,
adapter/store/params.py): created once under concurrent writers, never cached from a write
that was rolled back (SQLite, and PostgreSQL in the -m db pass)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event, func, select
from sqlalchemy.orm import Session, sessionmaker

from adapter.fhir.search_query import parse_search
from adapter.store import save_resources
from adapter.store.models import KINDS, SearchIndex, SearchParam
from adapter.store.search import find
from adapter.store.search_tokens import index_rows

T0 = datetime(2026, 6, 1, tzinfo=UTC)


def _specimen(sid: str, patient: str = "p1") -> dict[str, Any]:
    return {"resourceType": "Specimen", "id": sid, "subject": {"reference": f"Patient/{patient}"}}


def _practitioner(pid: str) -> dict[str, Any]:
    return {"resourceType": "Practitioner", "id": pid, "name": [{"family": "王"}]}


def _found(session: Session, rtype: str, params: list[tuple[str, str]]) -> set[str]:
    parsed = parse_search(rtype, params)
    return {b["id"] for b in find(session, [rtype], parsed.criteria, count=50).bodies}


def _param_ids(session: Session) -> dict[tuple[str, str, int], int]:
    rows = session.execute(
        select(SearchParam.resource_type, SearchParam.param, SearchParam.kind, SearchParam.param_id)
    )
    return {(t, p, k): i for t, p, k, i in rows}


def test_a_param_created_in_a_rolled_back_savepoint_is_not_kept(
    session_factory: sessionmaker[Session],
) -> None:
    """SQLite gives a rolled-back id to the next new triple: an id remembered from the
    savepoint would file the Specimens' rows under the Practitioners' names."""
    with session_factory.begin() as session:
        trial = session.begin_nested()
        save_resources(session, [_specimen("s1")], message_id=None, now=T0)
        trial.rollback()
        save_resources(session, [_practitioner("d1")], message_id=None, now=T0)
    with session_factory.begin() as session:
        save_resources(session, [_specimen("s2")], message_id=None, now=T0)
    with session_factory() as session:
        assert _found(session, "Specimen", [("patient", "p1")]) == {"s2"}
        assert _found(session, "Practitioner", [("name", "王")]) == {"d1"}
        ids = _param_ids(session)
        # every row, a PostgreSQL array's values too (names are ids there: decision 0117)
        stored = set(session.execute(select(index_rows().c.param_id)).scalars())
        assert stored == set(ids.values())  # no row names a triple the table lost
        specimen = ids[("Specimen", "patient", KINDS["reference"])]
        kinds = session.execute(
            select(SearchIndex.kind).where(SearchIndex.param_id == specimen)
        ).scalars()
        assert set(kinds) == {KINDS["reference"]}


def test_a_param_created_in_a_rolled_back_transaction_is_not_kept(
    session_factory: sessionmaker[Session],
) -> None:
    session = session_factory()
    with session.begin():
        save_resources(session, [_specimen("x1")], message_id=None, now=T0)
        session.rollback()
    session.close()
    with session_factory.begin() as session:
        save_resources(session, [_practitioner("d2")], message_id=None, now=T0)
        save_resources(session, [_specimen("x2")], message_id=None, now=T0)
    with session_factory() as session:
        assert _found(session, "Specimen", [("patient", "p1")]) == {"x2"}
        assert _found(session, "Practitioner", [("name", "王")]) == {"d2"}


def test_concurrent_writers_create_a_new_param_once(
    session_factory: sessionmaker[Session],
) -> None:
    writers, errors = 4, []
    start = threading.Barrier(writers)

    def write(n: int) -> None:
        try:
            start.wait()
            with session_factory.begin() as session:
                bodies = [_specimen(f"w{n}", f"p{n}"), _practitioner(f"d{n}")]
                save_resources(session, bodies, message_id=None, now=T0)
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with session_factory() as session:
        assert _found(session, "Practitioner", [("name", "王")]) == {f"d{n}" for n in range(4)}
        assert _found(session, "Specimen", [("patient", "p2")]) == {"w2"}
        count = session.scalar(
            select(func.count())
            .select_from(SearchParam)
            .where(SearchParam.resource_type == "Specimen", SearchParam.param == "patient")
        )
        assert count == 1
        triples = list(_param_ids(session))
        assert len(triples) == len(set(triples))


def test_an_unknown_param_matches_nothing(session_factory: sessionmaker[Session]) -> None:
    with session_factory.begin() as session:
        save_resources(session, [_practitioner("d1")], message_id=None, now=T0)
    with session_factory() as session:  # no Specimen row was ever written: no triple
        assert _found(session, "Specimen", [("patient", "p1")]) == set()
        assert _found(session, "Specimen", [("patient:missing", "true")]) == set()
        assert _found(session, "Practitioner", [("name:missing", "true")]) == set()
        assert _found(session, "Practitioner", [("identifier:missing", "true")]) == {"d1"}


def _collected(sid: str, day: int) -> dict[str, Any]:
    return {**_specimen(sid), "collection": {"collectedDateTime": f"2026-05-{day:02d}"}}


def test_a_param_created_after_a_search_is_read_by_the_next_one(
    session_factory: sessionmaker[Session],
) -> None:
    """The ids are read by each search (decision 0073), never kept from an earlier one: a
    search before any Specimen row (no triple: matches nothing, and the sort's clauses are
    built with no id) must not hide the rows written after it, nor their sort order."""
    with session_factory() as session:
        assert _found(session, "Specimen", [("patient", "p1")]) == set()
        assert _found(session, "Specimen", [("_sort", "-collected")]) == set()
    with session_factory.begin() as session:  # the newest change collected the earliest
        for n, (sid, day) in enumerate([("late", 20), ("mid", 10), ("early", 1)]):
            save_resources(session, [_collected(sid, day)], message_id=None, now=T0.replace(hour=n))
    with session_factory() as session:
        assert _found(session, "Specimen", [("patient", "p1")]) == {"late", "mid", "early"}
        for sort, order in (
            ("-collected", ["late", "mid", "early"]),
            ("collected", ["early", "mid", "late"]),
        ):
            parsed = parse_search("Specimen", [("_sort", sort)])
            page = find(session, ["Specimen"], parsed.criteria, count=50, sort=parsed.sort)
            assert [b["id"] for b in page.bodies] == order


def test_the_search_statement_names_the_param_by_its_id(
    session_factory: sessionmaker[Session],
) -> None:
    """The parameter's id is a constant in the statement sent (PostgreSQL estimates a
    ``:not`` of a selective code from it; a subquery's id got a generic estimate and a
    nested loop over every row of the code: decision 0073), read from ``search_param``
    by the search's own session."""
    with session_factory.begin() as session:
        save_resources(session, [_specimen("s1")], message_id=None, now=T0)
    with session_factory() as session:
        wanted = _param_ids(session)[("Specimen", "patient", KINDS["reference"])]
        sent: list[str] = []
        engine = session.get_bind()

        def grab(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
            sent.append(statement)

        event.listen(engine, "before_cursor_execute", grab)
        try:
            assert _found(session, "Specimen", [("patient", "Patient/p1")]) == {"s1"}
            assert _found(session, "Specimen", [("patient:missing", "true")]) == set()
        finally:
            event.remove(engine, "before_cursor_execute", grab)
        probes = [s for s in sent if "search_index" in s]
        assert probes
        assert all(f"param_id = {wanted}" in s for s in probes)
        assert not any("search_param" in s for s in probes)
        assert any("FROM search_param" in s for s in sent)  # read by the search itself

"""The code systems of the search index as integers (decision 0059, adapter/store/systems.py):
created once under concurrent writers, never cached from a write that was rolled back,
and searched by their text (SQLite, and PostgreSQL in the -m db pass)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from adapter.fhir.search_query import parse_search
from adapter.store import save_resources
from adapter.store.models import SearchIndex, SearchSystem
from adapter.store.search import find
from adapter.store.systems import system_ids

T0 = datetime(2026, 6, 1, tzinfo=UTC)


def _obs(oid: str, system: str, code: str = "c") -> dict[str, Any]:
    coding = [{"system": system, "code": code}]
    return {"resourceType": "Observation", "id": oid, "status": "final", "code": {"coding": coding}}


def _found(session: Session, query: str) -> set[str]:
    parsed = parse_search("Observation", [("code", query)])
    return {b["id"] for b in find(session, ["Observation"], parsed.criteria, count=50).bodies}


def _systems(session: Session) -> dict[str, int]:
    return dict(session.execute(select(SearchSystem.system, SearchSystem.system_id)).all())


# PostgreSQL: the systems of the code values in the resources' arrays (decision 0103)
_TOKEN_SYSTEMS = text(
    "SELECT DISTINCT d.system_id FROM search_terms t CROSS JOIN LATERAL unnest(t.toks) k"
    " JOIN search_token d ON d.token_id = k JOIN search_param p ON p.param_id = d.param_id"
    " WHERE p.param = 'code'"
)


def test_a_system_created_in_a_rolled_back_savepoint_is_not_kept(
    session_factory: sessionmaker[Session],
) -> None:
    """SQLite gives a rolled-back id to the next new system: an id remembered from the
    savepoint would file urn:a's later rows under urn:b."""
    with session_factory.begin() as session:
        trial = session.begin_nested()
        save_resources(session, [_obs("a1", "urn:a")], message_id=None, now=T0)
        trial.rollback()
        save_resources(session, [_obs("b1", "urn:b")], message_id=None, now=T0)
    with session_factory.begin() as session:
        save_resources(session, [_obs("a2", "urn:a")], message_id=None, now=T0)
    with session_factory() as session:
        assert _found(session, "urn:a|c") == {"a2"}
        assert _found(session, "urn:b|c") == {"b1"}
        assert _found(session, "urn:a|") == {"a2"}
        ids = _systems(session)
        stored = set(
            session.execute(
                select(SearchIndex.system_id).where(SearchIndex.param == "code")
            ).scalars()
        )
        if session.get_bind().dialect.name == "postgresql":  # the token arrays (0103)
            stored.update(session.execute(_TOKEN_SYSTEMS).scalars())
        assert stored == {ids["urn:a"], ids["urn:b"]}


def test_a_system_created_in_a_rolled_back_transaction_is_not_kept(
    session_factory: sessionmaker[Session],
) -> None:
    session = session_factory()
    with session.begin():
        save_resources(session, [_obs("x1", "urn:x")], message_id=None, now=T0)
        session.rollback()
    session.close()
    with session_factory.begin() as session:
        save_resources(session, [_obs("y1", "urn:y")], message_id=None, now=T0)
        save_resources(session, [_obs("x2", "urn:x")], message_id=None, now=T0)
    with session_factory() as session:
        assert _found(session, "urn:x|c") == {"x2"}
        assert _found(session, "urn:y|c") == {"y1"}


def test_concurrent_writers_create_a_new_system_once(
    engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    writers, errors = 4, []
    start = threading.Barrier(writers)

    def write(n: int) -> None:
        try:
            start.wait()
            with session_factory.begin() as session:
                bodies = [_obs(f"w{n}", "urn:shared"), _obs(f"v{n}", f"urn:own-{n}")]
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
        assert _found(session, "urn:shared|c") == {f"w{n}" for n in range(writers)}
        count = session.scalar(
            select(func.count())
            .select_from(SearchSystem)
            .where(SearchSystem.system == "urn:shared")
        )
        assert count == 1
        assert len(_systems(session)) == writers + 1


def test_ids_are_stable_and_a_long_system_is_whole(session_factory: sessionmaker[Session]) -> None:
    long = "urn:oid:" + "1." * 1500  # 3,008 characters: more than a b-tree entry holds
    with session_factory.begin() as session:
        save_resources(session, [_obs("l1", long, "k")], message_id=None, now=T0)
        first = system_ids(session, [long, "http://loinc.org"])
    with session_factory.begin() as session:
        again = system_ids(session, ["http://loinc.org", long])
    assert first == again and len(set(first.values())) == 2
    with session_factory() as session:
        assert _found(session, f"{long}|k") == {"l1"}
        assert _found(session, f"{long[:-1]}|k") == set()
        assert _systems(session)[long] == first[long]

"""PostgreSQL: a reference criterion's GIN probe of ``search_terms`` runs once per statement
(decision 0088, dated section). In a night's run the referral loop's
``Task?patient=…&status=…`` was planned with the Tasks of the status outside and the
patient's GIN probe rescanned for each of them: seconds a lookup. The probe is an InitPlan
now, and the index has no pending list that every probe would read."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import Engine, event, text
from sqlalchemy.orm import Session, sessionmaker

from adapter.fhir.search_query import parse_search
from adapter.store import save_resources
from adapter.store.search import find
from tests.api.search_fixtures import T0


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    found = [plan]
    for child in plan.get("Plans", []):
        found.extend(_nodes(child))
    return found


def _save_patients_with_tasks(
    session_factory: sessionmaker[Session], patients: int, per_patient: int
) -> None:
    """Patients ``p0``…, each the subject of ``per_patient`` requested Tasks ``t<i>-<j>``."""
    saved: list[dict[str, Any]] = [
        {"resourceType": "Patient", "id": f"p{i}"} for i in range(patients)
    ]
    saved += [
        {
            "resourceType": "Task",
            "id": f"t{i}-{j}",
            "status": "requested",
            "intent": "order",
            "for": {"reference": f"Patient/p{i}"},
        }
        for i in range(patients)
        for j in range(per_patient)
    ]
    with session_factory.begin() as session:
        save_resources(session, saved, message_id=None, now=T0)


def test_a_reference_criterions_gin_probe_runs_once_per_statement(
    engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's search_terms")
    _save_patients_with_tasks(session_factory, 30, 4)
    with engine.connect() as conn:
        options = conn.execute(
            text(
                "SELECT reloptions FROM pg_class WHERE relname = 'ix_search_terms_refs'"
                " AND relnamespace = current_schema()::regnamespace"
            )
        ).scalar_one()
        assert options == ["fastupdate=off"]

    sent: list[tuple[str, Any]] = []

    def remember(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if "search_terms" in statement:
            sent.append((statement, params))

    parsed = parse_search("Task", [("patient", "Patient/p7"), ("status", "requested,accepted")])
    with session_factory() as session:
        connection = session.connection()
        event.listen(connection, "before_cursor_execute", remember)
        page = find(session, ["Task"], parsed.criteria, count=20)
        event.remove(connection, "before_cursor_execute", remember)
        assert sorted(r["id"] for r in page.bodies) == [f"t7-{j}" for j in range(4)]
        assert sent
        statement, params = sent[0]
        # the plan the statement would get with the status's rows taken as rare (a young
        # table's estimate): the Tasks outside, the reference side rescanned per Task
        connection.exec_driver_sql("SET LOCAL enable_hashjoin = off")
        connection.exec_driver_sql("SET LOCAL enable_mergejoin = off")
        raw = connection.exec_driver_sql(
            "EXPLAIN (ANALYZE, FORMAT JSON) " + statement, params
        ).scalar_one()
        plan = (json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"]
    # either arrays index: the status is an array element too since decision 0103 (one
    # probe of search_terms for both criteria, adapter/store/search.py ``_conditions``)
    arrays = ("ix_search_terms_refs", "ix_search_terms_toks")
    probes = [n for n in _nodes(plan) if n.get("Index Name") in arrays]
    assert probes, json.dumps(plan)
    assert all(n["Actual Loops"] == 1 for n in probes), json.dumps(plan)


def test_a_reference_criterions_keys_are_bound_so_each_patient_shares_one_statement(
    engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    """Keys written into the SQL made a statement per patient: each one compiled and kept
    in SQLAlchemy's cache (up to 750 a process), which raised a night's memory by tens of
    MB a process. Bound as one array parameter, every patient's lookup is one statement."""
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's search_terms")
    _save_patients_with_tasks(session_factory, 3, 1)

    sent: list[str] = []

    def remember(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "search_terms" in statement:
            sent.append(statement)

    with session_factory() as session:
        connection = session.connection()
        event.listen(connection, "before_cursor_execute", remember)
        for i in range(3):
            parsed = parse_search("Task", [("patient", f"Patient/p{i}"), ("status", "requested")])
            page = find(session, ["Task"], parsed.criteria, count=20)
            assert [r["id"] for r in page.bodies] == [f"t{i}-0"]
        event.remove(connection, "before_cursor_execute", remember)
    assert len(sent) == 3
    assert len(set(sent)) == 1, sent

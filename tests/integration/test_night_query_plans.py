"""Statements that run for every document of a night, or for every page of a listing, must
stay on their selective index as the store grows (issue 14: "cost must stay flat as the
tables grow"). SQLite plans without statistics, so a plan that reads every row of a kind
shows only when the kind is large: a 50,000-document night spent 36 % of its time in one
such read once 7,500 referral Tasks were stored. These tests read the plan of the statement
as the code builds it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, Select, inspect

from adapter.console.pages.messages import patients_of_statement
from adapter.pipeline.steps import _OPEN_CARE
from adapter.referral.ledger_step import awaiting_follow_up
from adapter.referral.messages import tasks_about
from adapter.store import make_engine, migrate
from adapter.store.engine import downgrade
from adapter.store.models import CareRelationship


def _plan(engine: Engine, statement: Select[Any]) -> str:
    """The plan's text: SQLite's EXPLAIN QUERY PLAN; PostgreSQL's EXPLAIN with sequential
    scans off (its tables here are too small for an index to pay: which index it can use is
    what is asked)."""
    sql = str(statement.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True}))
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            rows = connection.exec_driver_sql("EXPLAIN QUERY PLAN " + sql).all()
        else:
            connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
            rows = connection.exec_driver_sql("EXPLAIN " + sql).all()
    return "\n".join(str(row[-1]) for row in rows)


def _task(n: int, patient: str) -> dict[str, Any]:
    return {
        "resourceType": "Task",
        "id": f"task-{n}",
        "status": "requested",
        "intent": "order",
        "for": {"reference": f"Patient/{patient}"},
    }


def test_tasks_of_a_patient_are_found_by_the_patient_key_not_by_reading_every_task(
    engine: Engine, save: Callable[..., Any]
) -> None:
    save([_task(n, f"p{n}") for n in range(200)])
    save(
        [
            {
                "resourceType": "Observation",
                "id": "o1",
                "status": "final",
                "code": {"text": "x"},
                "subject": {"reference": "Patient/lonely"},
            }
        ]
    )

    plan = _plan(engine, tasks_about(["p7", "p8"]))

    assert "ix_resource_patient_key" in plan, plan
    assert "ix_resource_resource_type" not in plan, plan  # (resource_type, last_updated, id)
    with engine.connect() as connection:
        assert connection.execute(tasks_about(["p7"])).first() is not None
        assert connection.execute(tasks_about(["nobody", "p199"])).first() is not None
        # another kind of resource about the patient is not a Task
        assert connection.execute(tasks_about(["lonely"])).first() is None


def test_follow_up_of_an_encounter_reads_the_ledger_by_patient(engine: Engine) -> None:
    plan = _plan(engine, awaiting_follow_up(["p1", "p2", "p3"], "township-a"))

    assert "ix_referral_ledger_patient_id" in plan, plan


@pytest.mark.db
def test_migration_0020_adds_and_removes_the_ledger_patient_index(blank_database_url: str) -> None:

    engine = make_engine(blank_database_url)
    try:
        migrate(engine)
        assert "ix_referral_ledger_patient_id" in _ledger_indexes(engine)
        downgrade(engine, "0019")
        assert "ix_referral_ledger_patient_id" not in _ledger_indexes(engine)
        migrate(engine)
        assert "ix_referral_ledger_patient_id" in _ledger_indexes(engine)
    finally:
        engine.dispose()


def _ledger_indexes(engine: Engine) -> set[str]:
    return {index["name"] for index in inspect(engine).get_indexes("referral_ledger")}


def test_the_console_listing_reads_the_patients_of_its_page_by_message(engine: Engine) -> None:
    plan = _plan(engine, patients_of_statement(["m1", "m2"]))

    assert "ix_resource_message_id" in plan, plan
    assert "ix_resource_resource_type" not in plan, plan


def test_open_care_of_a_person_reads_the_care_key_index_with_the_planners_statistics(
    engine: Engine,
) -> None:
    """Every message's care step reads the person's open relationships with the person's
    ids in one statement (adapter/pipeline/steps.py). On PostgreSQL, ``person_id IN (the
    ids' recursive query)`` was planned as a hash join over a sequential scan of the whole
    table while it held a few thousand rows: a 20,000-document night read it once per
    document for its first 5,760. Here with statistics (ANALYZE) and sequential scans
    allowed: the plan the server really chooses."""
    now = datetime.now(UTC)
    rows = [
        {
            "person_id": f"p{n}",
            "facility_id": "county",
            "source": "activity",
            "ref": "",
            "start_at": now - timedelta(days=1),
            "end_at": now + timedelta(days=365) if n % 5 else now - timedelta(hours=1),
            "detail": "Observation/" + "x" * 40,
            "created_at": now,
            "updated_at": now,
        }
        for n in range(3000)
    ]
    with engine.begin() as connection:
        connection.execute(CareRelationship.__table__.insert(), rows)
        if engine.dialect.name == "postgresql":
            connection.exec_driver_sql("ANALYZE care_relationship")
    statement = _OPEN_CARE[engine.dialect.name == "postgresql"]
    params = {"id": "p7", "at": now}
    compiled = statement.compile(dialect=engine.dialect)
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            given = compiled.construct_params(params)
            positional = [given[name] for name in compiled.positiontup or ()]
            plan_rows = connection.exec_driver_sql(
                "EXPLAIN QUERY PLAN " + str(compiled), tuple(positional)
            ).all()
        else:
            plan_rows = connection.exec_driver_sql("EXPLAIN " + str(compiled), params).all()
        plan = "\n".join(str(row[-1]) for row in plan_rows)
        found = connection.execute(statement, params).mappings().all()
        closed = connection.execute(statement, {"id": "p5", "at": now}).mappings().all()

    if engine.dialect.name == "postgresql":
        assert "Seq Scan on care_relationship" not in plan, plan
        assert "uq_care_key" in plan, plan
    else:
        assert "SCAN care_relationship" not in plan, plan
    assert [(r["person_id"], r["facility_id"]) for r in found] == [("p7", "county")]
    assert closed == []  # p5's relationship ended an hour ago

"""A bulk batch's reads of a person's open care rows (``care.open_rows_of``, decision 0148):
on SQLite every row of the person's ids is read once a batch and the rows open at each
message's moment chosen from them; every answer is the one the statement of open rows
reads from the database, after the batch's care writes and patient index writes too.
PostgreSQL reads every time (the same answers)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from adapter.identity.index import records
from adapter.pipeline.steps import _EVERY_CARE, _OPEN_CARE
from adapter.store import care
from adapter.store.resources import batch_writes, flush_batch_writes

T0 = datetime(2026, 3, 1, 8, 30, 15, 123456, tzinfo=UTC)
DAY = timedelta(days=1)
# before every row, at a start, a microsecond after, inside, at an end, after
MOMENTS = [T0 - DAY, T0, T0 + timedelta(microseconds=1), T0 + 5 * DAY, T0 + 10 * DAY, T0 + 99 * DAY]
WHO = ["pA", "pB", "rA", "rB", "rC", "nobody"]


def _record(patient_id: str, person_id: str) -> dict[str, Any]:
    return {
        "patient_id": patient_id,
        "person_id": person_id,
        "facility_id": "f1",
        "link_kind": "auto",
        "rule_version": 1,
        "rule": "no-match",
        "score": 0.0,
        "evidence": {},
        "features": {"record": patient_id},
        "created_at": T0,
        "updated_at": T0,
    }


def _seed(factory: sessionmaker[Session]) -> None:
    """Records rA (person pA) and rB (pB); open, lapsed, granted and revoked rows."""
    with factory.begin() as session:
        records.insert_record(session, _record("rA", "pA"))
        records.insert_record(session, _record("rB", "pB"))
        care.note_activity(session, "rA", "f1", at=T0, until=T0 + 10 * DAY, detail="open")
        care.note_activity(session, "rA", "f2", at=T0 - 9 * DAY, until=T0, detail="lapsed")
        care.grant(session, "pA", "f3", at=T0, until=None, actor="test", note="n")
        care.revoke(session, "pB", "f3", at=T0 + 5 * DAY, actor="test", note="n")
        care.note_activity(session, "rB", "f1", at=T0 + DAY, until=T0 + 99 * DAY, detail="b")


def _same_as_read(session: Session) -> int:
    """Every person and moment: the batch's answer is the database's; how many compared."""
    postgresql = session.get_bind().dialect.name == "postgresql"
    compared = 0
    for who in WHO:
        for moment in MOMENTS:
            params = {"id": who, "at": moment}
            read = care.read_rows(session, _OPEN_CARE[postgresql], params)
            assert care.open_rows_of(session, _OPEN_CARE[postgresql], _EVERY_CARE, params) == read
            compared += 1
    return compared


def test_a_batch_s_open_rows_are_the_database_s_through_its_writes(
    session_factory: sessionmaker[Session], engine: Engine
) -> None:
    _seed(session_factory)
    with session_factory.begin() as session:
        writes = batch_writes(session)
        assert _same_as_read(session) == len(WHO) * len(MOMENTS)
        if engine.dialect.name == "sqlite":  # met again: every row read once, the ids kept
            kept = writes.reads[care._BATCH]
            assert set(kept.rows) == set(WHO)
            assert {k for k, persons in kept.under.items() if "pA" in persons} == {"pA", "rA"}
        # the batch writes: a lapsed row starts again, a new one, under a record of a person
        later = T0 + 5 * DAY
        care.note_activity(session, "rA", "f2", at=later, until=later + 30 * DAY, detail="again")
        care.note_activity(session, "rB", "f4", at=later, until=later + DAY, detail="new")
        if engine.dialect.name == "sqlite":  # kept as written, not read again
            assert set(writes.reads[care._BATCH].rows) == set(WHO)
        _same_as_read(session)
        # a row under a record no person has yet, then the record linked to pA
        care.note_activity(session, "rC", "f5", at=T0, until=later, detail="c")
        _same_as_read(session)
        records.insert_record(session, _record("rC", "pA"))
        if engine.dialect.name == "sqlite":  # the ids may have changed: forgotten
            assert care._BATCH not in writes.reads
        _same_as_read(session)
        # a registration ends others: forgotten, read again
        care.register(session, "rA", "f6", at=later, detail="r", also={"pA", "rA"})
        if engine.dialect.name == "sqlite":
            assert care._BATCH not in writes.reads
        _same_as_read(session)
        care.close_referral(session, "none", at=later, end=later, detail="x")
        _same_as_read(session)
        flush_batch_writes(session)


def test_outside_a_batch_every_read_goes_to_the_database(
    session_factory: sessionmaker[Session],
) -> None:
    _seed(session_factory)
    with session_factory.begin() as session:
        _same_as_read(session)
        care.note_activity(session, "rA", "f2", at=T0, until=T0 + DAY, detail="again")
        _same_as_read(session)
        assert care._BATCH not in session.info


def test_a_person_met_once_in_a_batch_reads_its_open_rows_only(
    session_factory: sessionmaker[Session], engine: Engine
) -> None:
    if engine.dialect.name != "sqlite":
        return  # PostgreSQL reads every time
    _seed(session_factory)
    with session_factory.begin() as session:
        writes = batch_writes(session)
        params = {"id": "pA", "at": T0}
        first = care.open_rows_of(session, _OPEN_CARE[False], _EVERY_CARE, params)
        assert "pA" not in writes.reads[care._BATCH].rows  # a new patient's batch: as before
        again = care.open_rows_of(session, _OPEN_CARE[False], _EVERY_CARE, params)
        assert again == first == care.read_rows(session, _OPEN_CARE[False], params)
        assert "pA" in writes.reads[care._BATCH].rows  # met again: every row, kept
        flush_batch_writes(session)

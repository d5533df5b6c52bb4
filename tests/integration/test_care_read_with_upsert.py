"""PostgreSQL: a message's open care rows read in the statement of its first activity upsert
(``care.open_and_note_activity``, decision 0122) give what the read and then
``note_activity`` give, and store the same row, times included."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from adapter.pipeline.steps import _OPEN_AND_NOTED, _OPEN_CARE
from adapter.store import care

pytestmark = pytest.mark.db

T0 = datetime(2026, 3, 1, 8, 30, 15, 123456, tzinfo=UTC)


def _seed(session: Session, person: str) -> None:
    """An open activity row at f1, a lapsed one at f2, an open grant at f3."""
    care.note_activity(session, person, "f1", at=T0, until=T0 + timedelta(days=90), detail="a")
    care.note_activity(session, person, "f2", at=T0, until=T0 + timedelta(days=1), detail="b")
    care.grant(session, person, "f3", at=T0, until=None, actor="test", note="n")


def _stored(session: Session, person: str) -> list[tuple[Any, ...]]:
    table = care._c
    rows = session.execute(
        # a grant's ref is made afresh: left out
        select(*(c for c in table.c if c.name not in ("id", "ref"))).where(
            table.c.person_id == person
        )
    )
    return sorted(tuple(r) for r in rows)


@pytest.mark.parametrize("facility", ["f1", "f2", "f4"])  # extended, lapsed, new
def test_the_read_with_the_upsert_is_the_read_then_the_upsert(
    session_factory: sessionmaker[Session], engine: Engine, facility: str
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("one statement on PostgreSQL; SQLite reads then upserts")
    moment = T0 + timedelta(days=10, microseconds=7)
    until = moment + timedelta(days=90)
    with session_factory.begin() as session:
        for person in ("apart", "together"):
            _seed(session, person)
    with session_factory.begin() as session:
        params = {"id": "apart", "at": moment}
        before = care.read_rows(session, _OPEN_CARE[True], params)
        row = care.note_activity(
            session, "apart", facility, at=moment, until=until, detail="the message"
        )
        together, noted = care.open_and_note_activity(
            session,
            _OPEN_AND_NOTED,
            {"id": "together", "at": moment},
            "together",
            facility,
            at=moment,
            until=until,
            detail="the message",
        )

    def unnamed(r: care.CareRow) -> tuple[Any, ...]:
        summary = r.summary()
        return tuple((k, v) for k, v in sorted(summary.items()) if k not in ("id", "person", "ref"))

    assert [unnamed(r) for r in together] == [unnamed(r) for r in before]
    assert unnamed(noted) == unnamed(row)
    assert (noted.created_at, noted.updated_at) == (row.created_at, row.updated_at)
    with session_factory() as session:
        stored = {p: _stored(session, p) for p in ("apart", "together")}
    assert [r[1:] for r in stored["together"]] == [r[1:] for r in stored["apart"]]

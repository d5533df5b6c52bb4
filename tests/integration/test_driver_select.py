"""Statements run on the driver (adapter/store/driver_select.py: SQLite's, decision 0106;
psycopg's, decision 0141) give what SQLAlchemy's execution gives: the same rows with the
same Python values (UTC datetimes, booleans, bodies), an UPDATE setting only the columns its
parameters name, a refused write wrapped in the same ``DBAPIError`` subclass; and nothing is
run on the driver where a listener observes the statements."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, bindparam, event, literal_column, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from adapter.store import care
from adapter.store.driver_select import driver_many, driver_rows, execute_rows
from adapter.store.fast_insert import positional
from adapter.store.models import InboundMessage, Resource
from adapter.store.resources import save_resources

pytestmark = pytest.mark.db

T = datetime(2026, 12, 6, 8, 0, 0, 123456, tzinfo=UTC)
_c = care._c
_m = InboundMessage.__table__
_r = Resource.__table__


def _sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def _seed(session: Session) -> None:
    care.note_activity(session, "rec", "f1", at=T, until=T + timedelta(days=1), detail="a")
    care.note_activity(session, "rec2", "f2", at=T, until=T + timedelta(days=2), detail="b")
    save_resources(
        session,
        [{"resourceType": "Patient", "id": "p1", "gender": "female", "active": True}],
        message_id=None,
        now=T,
        facility_id="f1",
    )


_OPEN = select(_c).where(_c.c.person_id == bindparam("id"), _c.c.start_at <= bindparam("at"))
_ROWS = select(_r.c.resource_type, _r.c.id, _r.c.last_updated, _r.c.deleted, _r.c.body).where(
    _r.c.id == bindparam("rid")
)


def test_rows_are_sqlalchemys(session_factory: sessionmaker[Session], engine: Engine) -> None:
    with session_factory.begin() as session:
        _seed(session)
        for statement, params in [
            (_OPEN, {"id": "rec", "at": T + timedelta(hours=1)}),
            (_OPEN, {"id": "nobody", "at": T}),
            (_ROWS, {"rid": "p1"}),
        ]:
            expected = [tuple(r) for r in session.execute(statement, params)]
            found = driver_rows(session, statement, params)
            assert found is not None
            assert [tuple(r) for r in found] == expected
            for row, want in zip(found, session.execute(statement, params), strict=True):
                assert [type(v) for v in row] == [type(v) for v in want]
                assert row._fields == tuple(want._fields)
        (row,) = driver_rows(session, _ROWS, {"rid": "p1"}) or []
        assert row.last_updated == T.replace(microsecond=123000)  # stored to the ms
        assert row.deleted is False and row.body["gender"] == "female"


def test_update_sets_only_the_named_columns(session_factory: sessionmaker[Session]) -> None:
    statement = update(_c).where(_c.c.person_id == bindparam("b_person"))
    with session_factory.begin() as session:
        _seed(session)
        assert driver_rows(session, statement, {"b_person": "rec", "detail": "z"}) == []
        rows = {r.person_id: r for r in care.list_care(session, persons=["rec", "rec2"])}
        assert rows["rec"].detail == "z" and rows["rec"].end_at == T + timedelta(days=1)
        assert rows["rec2"].detail == "b"
        driver_rows(session, statement, {"b_person": "rec", "end_at": T + timedelta(days=9)})
        again = care.list_care(session, persons=["rec"])[0]
        assert (again.detail, again.end_at) == ("z", T + timedelta(days=9))


def test_many_updates_are_sqlalchemys_executemany(session_factory: sessionmaker[Session]) -> None:
    # decision 0133: a bulk batch's held UPDATEs, one executemany on the driver
    statement = update(_c).where(_c.c.person_id == bindparam("b_person"))
    rows = [
        {"b_person": "rec", "detail": "y", "end_at": T + timedelta(days=5)},
        {"b_person": "rec2", "detail": "x", "end_at": T + timedelta(days=6)},
    ]
    with session_factory.begin() as session:
        _seed(session)
        assert driver_many(session, statement, rows)
        found = {r.person_id: r for r in care.list_care(session, persons=["rec", "rec2"])}
        assert (found["rec"].detail, found["rec"].end_at) == ("y", T + timedelta(days=5))
        assert (found["rec2"].detail, found["rec2"].end_at) == ("x", T + timedelta(days=6))
        # parameter sets of different keys: not on the driver
        assert not driver_many(session, statement, [rows[0], {"b_person": "rec", "detail": "w"}])
    with session_factory() as session, session.begin():
        _seed(session)
        with pytest.raises(IntegrityError):  # a refused row: SQLAlchemy's exception
            driver_many(
                session,
                statement,
                [{"b_person": "rec2", "person_id": "rec", "facility_id": "f1"}],
            )
        session.rollback()


def test_a_refused_write_raises_as_sqlalchemy_does(session_factory: sessionmaker[Session]) -> None:
    statement = update(_m).where(_m.c.id == bindparam("b_id"))
    with session_factory() as session, session.begin():
        _seed(session)
        with pytest.raises(IntegrityError):
            # two rows of one (person, facility, source, ref): the unique key refuses it
            driver_rows(
                session,
                update(_c).where(_c.c.person_id == bindparam("b_person")),
                {"b_person": "rec2", "person_id": "rec", "facility_id": "f1"},
            )
        session.rollback()
    with session_factory.begin() as session:
        assert driver_rows(session, statement, {"b_id": "none", "status": "stored"}) == []


def test_an_observer_sees_every_statement(
    session_factory: sessionmaker[Session], engine: Engine
) -> None:
    seen: list[str] = []

    def listen(conn: object, cursor: object, sql: str, *args: object) -> None:
        seen.append(sql)

    event.listen(engine, "before_cursor_execute", listen)
    try:
        with session_factory.begin() as session:
            _seed(session)
            seen.clear()
            assert driver_rows(session, _OPEN, {"id": "rec", "at": T}) is None
            assert len(care.read_rows(session, _OPEN, {"id": "rec", "at": T})) == 1
            assert len(seen) == 1  # through SQLAlchemy: the listener saw it
    finally:
        event.remove(engine, "before_cursor_execute", listen)


def test_parameters_rendered_at_execution_go_through_sqlalchemy(
    session_factory: sessionmaker[Session],
) -> None:
    expanding = select(_c).where(_c.c.person_id.in_(bindparam("ids", expanding=True)))
    rendered = select(_c).limit(bindparam("n", literal_execute=True))
    with session_factory.begin() as session:
        assert driver_rows(session, expanding, {"ids": ["rec"]}) is None
        assert driver_rows(session, rendered, {"n": 1}) is None


def test_a_number_whose_reading_needs_the_column_type_goes_through_sqlalchemy(
    session_factory: sessionmaker[Session], engine: Engine
) -> None:
    # psycopg's processor of a Float / Numeric depends on the cursor's type code (0141)
    from adapter.identity.index.records import _record

    statement = select(_record.c.patient_id, _record.c.score).where(
        _record.c.patient_id == bindparam("pid")
    )
    with session_factory.begin() as session:
        found = driver_rows(session, statement, {"pid": "none"})
        assert (found is None) is not _sqlite(engine)
        assert execute_rows(session, statement, {"pid": "none"}) == []


def test_named_parameters_become_positional_with_their_casts() -> None:
    from sqlalchemy.dialects.postgresql.psycopg import dialect

    statement = select(_c.c.person_id).where(
        _c.c.person_id == bindparam("id"),
        _c.c.detail.like(literal_column("'a%b'")),
        _c.c.start_at <= bindparam("at"),
        _c.c.end_at > bindparam("at"),
    )
    sql, order = positional(statement.compile(dialect=dialect()))
    assert order == ("id", "at", "at")
    assert "%(" not in sql and sql.count("%s") == 3
    assert "%%" in sql  # an escaped percent sign stays escaped

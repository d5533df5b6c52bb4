"""adapter/store/fast_insert.py: rows inserted without SQLAlchemy's work per row are stored
exactly as ``session.execute(insert(table), rows)`` stores them (decision 0050), and a
refused row fails as a statement of SQLAlchemy's does. SQLite and, in the ``-m db`` pass,
PostgreSQL, where a batch of rows goes by COPY (decision 0053): the tests lower the
COPY threshold so that their few rows take that path too, and check that it did."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, Table, event, insert, text
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from adapter.store import fast_insert
from adapter.store.fast_insert import _plan, insert_rows
from adapter.store.models import KINDS, Outbox, Resource, ResourceVersion, SearchIndex
from adapter.store.outbox.enqueue import order_hash
from adapter.store.refusals import is_refusal, is_unique_violation

AT = datetime(2026, 12, 4, 8, 30, 15, 123456, tzinfo=UTC)
LATER = AT.astimezone(UTC) + timedelta(hours=8)
_KEY_BASE: dict[str, int] = {}  # resource keys per prefix: base + n


def _base(prefix: str) -> int:
    return _KEY_BASE.setdefault(prefix, 100 * (len(_KEY_BASE) + 1))


def _resources(prefix: str, count: int = 3) -> list[dict[str, Any]]:
    return [
        {
            "resource_type": "Observation",
            "id": f"{prefix}{n}",
            "resource_key": _base(prefix) + n,
            "version_id": 1,
            "last_updated": AT,
            "deleted": n == 2,
            "content_hash": "0" * 64,
            "body": {"resourceType": "Observation", "id": str(n), "valueString": "血糖"},
            "message_id": None,
            "patient_key": "Patient/p1" if n else None,
            "facility_key": 1,  # a facility_name key (decision 0118)
        }
        for n in range(count)
    ]


def _index(prefix: str) -> list[dict[str, Any]]:
    return [
        {
            "row_id": n,  # the store gives it on SQLite (decision 0085)
            "resource_key": _base(prefix) + n,
            "param_id": 3 if n else 5,  # search_param's id (decision 0071)
            "kind": KINDS["date"] if n else KINDS["token"],
            "system_id": None if n else 7,  # search_system's id (decision 0059)
            "code": None if n else "2345-7",
            "value": None,
            "value_norm": "血糖" if n else None,
            "value_date_start": AT if n else None,
            "value_date_end": LATER if n else None,
            "value_number": 5.6 if n == 1 else None,
            "reference": None,
            "code_full": None,
            "value_norm_full": None,
            "reference_full": None,
        }
        for n in range(3)
    ]


def _versions(prefix: str) -> list[dict[str, Any]]:
    return [
        {
            "resource_type": "Observation",
            "id": f"{prefix}{n}",
            "version_id": 1,
            "last_updated": AT,
            "deleted": False,
            "body": {"resourceType": "Observation", "id": str(n)} if n else None,
            "message_id": None,
        }
        for n in range(3)
    ]


def _outbox(prefix: str, count: int = 3) -> list[dict[str, Any]]:
    return [
        {
            "destination_id": 1,  # outbox_destination's (decision 0079)
            "resource_key": _base(prefix) + n,  # the resource's (decision 0084)
            "version_id": 1,
            "message_id": None,
            "reason": "route 1",
            "person_id": None,
            "care_facility": None,
            "order_key": order_hash("Patient/p1"),
            "state": "pending",
            "attempts": 0,
            "next_attempt_at": AT,
            "created_at": LATER,
            "last_error": None,
        }
        for n in range(count)
    ]


def _stored(engine: Engine, table: Table, key: str, prefix: str) -> list[tuple[Any, ...]]:
    """The rows as the database holds them (no types applied), the prefix taken off."""
    skip = {"row_id", "id"} - {key}
    columns = [c.name for c in table.columns if c.name not in skip]
    base = _base(prefix)
    if key == "resource_key":  # the index and outbox rows: by their resource's key
        where, params = f"{key} >= :lo AND {key} < :hi", {"lo": base, "hi": base + 100}
    else:
        where, params = f"{key} LIKE :p", {"p": f"{prefix}%"}
    with engine.connect() as conn:
        sql = f"SELECT {', '.join(columns)} FROM {table.name} WHERE {where} ORDER BY {key}"
        rows = conn.execute(text(sql), params).all()
    out = []
    for row in rows:  # the prefix, and the key's base, taken off
        values = list(row)
        for at, name in enumerate(columns):
            if name == "resource_key":
                values[at] -= base
            elif name == key:
                values[at] = values[at][len(prefix) :]
        out.append(tuple(values))
    return out


@pytest.fixture
def copy_every_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    """COPY from one row on, so that the tests' three rows take the PostgreSQL path."""
    monkeypatch.setattr(fast_insert, "_COPY_MIN_ROWS", 1)


def _inserts(engine: Engine) -> list[str]:
    """The INSERT statements the engine sends from now on (a COPY is not one)."""
    seen: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def _seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT"):
            seen.append(statement.split("(")[0].split()[-1])

    return seen


@pytest.mark.usefixtures("copy_every_batch")
def test_rows_are_stored_as_sqlalchemy_stores_them(
    session_factory: sessionmaker[Session], engine: Engine
) -> None:
    tables = [
        (Resource.__table__, "id", _resources),
        (SearchIndex.__table__, "resource_key", _index),
        (ResourceVersion.__table__, "id", _versions),
        (Outbox.__table__, "resource_key", _outbox),
    ]
    with session_factory.begin() as session:
        for table, _, rows in tables:
            session.execute(insert(table), rows("sa-"))
        inserts = _inserts(engine)
        for table, _, rows in tables:
            insert_rows(session, table, rows("fast-"))
    # PostgreSQL: every table's rows went by COPY, no INSERT statement; SQLite: INSERTs
    postgres = engine.dialect.name == "postgresql"
    assert inserts == ([] if postgres else [t.name for t, _, _ in tables])
    for table, key, _ in tables:
        by_sqlalchemy = _stored(engine, table, key, "sa-")
        assert len(by_sqlalchemy) == 3
        assert _stored(engine, table, key, "fast-") == by_sqlalchemy, table.name
    # fewer than COPY's rows go to the driver as tuples, on both (psycopg: decision 0141)
    fast = _plan(SearchIndex.__table__, engine.dialect, tuple(_index("x")[0]))
    assert fast is not None


def _sent(engine: Engine) -> list[str]:
    """The INSERT statements' text the engine sends from now on."""
    seen: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def _seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT"):
            seen.append(statement)

    return seen


def test_rows_n_to_an_insert_are_stored_as_one_a_statement(
    session_factory: sessionmaker[Session], engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Decision 0151: on SQLite a batch's rows go 16 to an INSERT, the rest one a
    statement; stored the same, the autoincrement keys (outbox.id) in the same order."""
    monkeypatch.setattr(fast_insert, "_COPY_MIN_ROWS", 10**6)  # PostgreSQL: INSERTs too
    count = 37  # two INSERTs of 16 rows, then 5 rows one a statement
    ids: dict[str, list[int]] = {}
    for prefix, n in (("one-", 1), ("wide-", 16)):
        monkeypatch.setattr(fast_insert, "_ROWS_A_STATEMENT", n)
        with session_factory.begin() as session:
            sent = _sent(engine)
            insert_rows(session, Resource.__table__, _resources(prefix, count))
            insert_rows(session, Outbox.__table__, _outbox(prefix, count))
        wide = [sql for sql in sent if sql.count("), (") == 15]
        assert len(wide) == (2 if prefix == "wide-" and engine.dialect.name == "sqlite" else 0)
        with engine.connect() as conn:
            ids[prefix] = [
                row[0] - _base(prefix)
                for row in conn.execute(
                    text("SELECT resource_key FROM outbox WHERE resource_key >= :lo"
                         " AND resource_key < :hi ORDER BY id"),
                    {"lo": _base(prefix), "hi": _base(prefix) + 100},
                )
            ]  # fmt: skip
    assert ids["wide-"] == ids["one-"] == list(range(count))
    for table, key in ((Resource.__table__, "id"), (Outbox.__table__, "resource_key")):
        one = _stored(engine, table, key, "one-")
        assert len(one) == count
        assert _stored(engine, table, key, "wide-") == one, table.name


def test_rows_missing_a_column_with_a_default_go_through_sqlalchemy(engine: Engine) -> None:
    # outbox.state has a default: SQLAlchemy fills it in, so its statement is used
    row = {k: v for k, v in _outbox("x")[0].items() if k != "state"}
    assert _plan(Outbox.__table__, engine.dialect, tuple(row)) is None


@pytest.mark.usefixtures("copy_every_batch")
def test_a_refused_row_fails_as_a_sqlalchemy_statement_fails(
    session_factory: sessionmaker[Session],
) -> None:
    with pytest.raises(IntegrityError) as refused, session_factory.begin() as session:
        insert_rows(session, Resource.__table__, _resources("twice-") + _resources("twice-"))
    assert is_unique_violation(refused.value) and is_refusal(refused.value)
    with session_factory() as session:
        assert session.get(Resource, ("Observation", "twice-0")) is None


@pytest.mark.usefixtures("copy_every_batch")
def test_a_refused_row_rolls_back_to_its_savepoint_only(
    session_factory: sessionmaker[Session],
) -> None:
    # the bulk path's isolation: a refused batch of rows inside a savepoint leaves the
    # transaction usable and the rows written before the savepoint kept
    with session_factory.begin() as session:
        insert_rows(session, Resource.__table__, _resources("kept-"))
        with pytest.raises(IntegrityError), session.begin_nested():
            insert_rows(session, Resource.__table__, _resources("kept-"))
        insert_rows(session, Resource.__table__, _resources("after-"))
    with session_factory() as session:
        assert session.get(Resource, ("Observation", "kept-1")) is not None
        assert session.get(Resource, ("Observation", "after-2")) is not None


@pytest.mark.usefixtures("copy_every_batch")
def test_a_text_postgresql_cannot_hold_is_a_refusal(
    session_factory: sessionmaker[Session], engine: Engine
) -> None:
    with session_factory.begin() as session:  # the rows' resources (a foreign key)
        insert_rows(session, Resource.__table__, _resources("nul-"))
    rows = _index("nul-")
    rows[1]["value_norm"] = "血\x00糖"
    if engine.dialect.name == "sqlite":  # SQLite keeps the NUL: the row is stored as given
        with session_factory.begin() as session:
            insert_rows(session, SearchIndex.__table__, rows)
        stored = _stored(engine, SearchIndex.__table__, "resource_key", "nul-")
        assert "血\x00糖" in stored[1]
        return
    with pytest.raises(DataError) as refused, session_factory.begin() as session:
        insert_rows(session, SearchIndex.__table__, rows)
    assert is_refusal(refused.value)
    assert "血" not in str(refused.value)  # the value is not quoted back


def test_audit_rows_are_stored_as_sqlalchemy_stores_them(
    session_factory: sessionmaker[Session], engine: Engine
) -> None:
    """The audit writer's records and links go through ``insert_rows`` on SQLite (decision
    0050, amended 2026-12-05 bulkcpu): the same raw values as the ORM's insert."""
    from adapter.audit.chain import canonical
    from adapter.audit.writer import row_of
    from adapter.store.audit_log import AuditLink, AuditRecord

    def records(base: int) -> list[dict[str, Any]]:
        out = []
        for n in range(3):
            body = {
                "recorded": "2026-12-04T08:30:15.123Z",
                "action": "message.stored",
                "outcome": "success",
                "actor": "source:lab",
                "client": None if n else "c" * 200,  # cut to the column
                "facility": "county-hospital",
                "message": f"m{n}",
                "patients": ["Patient/p1"],
            }
            row = row_of(base + n, body, canonical(body), "0" * 64, f"{n}" * 64)
            out.append(row)
        return out

    def links(base: int) -> list[dict[str, Any]]:
        return [{"seq": base + n, "kind": "patient", "reference": "Patient/p1"} for n in range(3)]

    sqlite = engine.dialect.name == "sqlite"  # audit_link is SQLite's alone (migration 0048)
    with session_factory.begin() as session:
        session.execute(insert(AuditRecord), records(9001))
        insert_rows(session, AuditRecord.__table__, records(9101))
        if sqlite:
            session.execute(insert(AuditLink), links(9001))
            insert_rows(session, AuditLink.__table__, links(9101))

    def stored(table: str, base: int) -> list[tuple[Any, ...]]:
        with engine.connect() as conn:
            rows = conn.execute(
                text(f"SELECT * FROM {table} WHERE seq >= :lo AND seq < :hi ORDER BY seq"),
                {"lo": base, "hi": base + 100},
            ).all()
        return [(row[0] - base, *row[1:]) for row in rows]

    for table in ("audit_record", "audit_link") if sqlite else ("audit_record",):
        by_sqlalchemy = stored(table, 9001)
        assert len(by_sqlalchemy) == 3
        assert stored(table, 9101) == by_sqlalchemy, table


def test_rows_and_savepoints_go_to_the_driver_when_nothing_observes(
    session_factory: sessionmaker[Session], engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Decision 0100: on SQLite, with no statement events, echo or dialect events, the rows
    and the savepoints go to the DBAPI connection itself, not through SQLAlchemy's
    execution; stored the same, refused the same (the same exception, parameters hidden),
    and a refused statement's savepoint rolls back alone. Decision 0141: on PostgreSQL the
    rows too (psycopg's executemany), the savepoints through the connection as before."""
    sqlite = engine.dialect.name == "sqlite"
    with session_factory.begin() as session:
        session.execute(insert(Resource.__table__), _resources("sa-"))
    through: list[str] = []
    plain = Connection.exec_driver_sql

    def counting(self: Connection, statement: str, *args: Any, **kw: Any) -> Any:
        through.append(statement.split()[0])
        return plain(self, statement, *args, **kw)

    monkeypatch.setattr(Connection, "exec_driver_sql", counting)
    with session_factory.begin() as session:
        insert_rows(session, Resource.__table__, _resources("drv-"))
        with pytest.raises(IntegrityError) as refused, session.begin_nested():
            insert_rows(session, Resource.__table__, _resources("drv-"))
        insert_rows(session, Resource.__table__, _resources("drv2-"))
    monkeypatch.undo()
    # neither the INSERTs nor (SQLite) the savepoints went through SQLAlchemy
    kept = {"BEGIN"} if sqlite else {"BEGIN", "SAVEPOINT", "RELEASE", "ROLLBACK"}
    assert [s for s in through if s not in kept] == []
    assert is_unique_violation(refused.value) and is_refusal(refused.value)
    # hide_parameters, as SQLAlchemy's own (PostgreSQL's DETAIL names the key itself)
    assert "parameters hidden" in str(refused.value)
    assert "drv-0" not in str(refused.value) or not sqlite
    by_sqlalchemy = _stored(engine, Resource.__table__, "id", "sa-")
    assert _stored(engine, Resource.__table__, "id", "drv-") == by_sqlalchemy
    assert _stored(engine, Resource.__table__, "id", "drv2-") == by_sqlalchemy
    # observed (a statement event): through SQLAlchemy, seen as before
    seen = _inserts(engine)
    with session_factory.begin() as session:
        insert_rows(session, Resource.__table__, _resources("seen-"))
    assert seen == ["resource"]


def test_postgresql_rows_go_in_one_insert_and_one_row_without_a_pipeline(
    session_factory: sessionmaker[Session], engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Decision 0156: on PostgreSQL fewer rows than COPY's go as ONE INSERT of every row
    (psycopg's executemany sends, binds and executes each row on its own), and one row by
    the cursor's execute; stored exactly as SQLAlchemy's own INSERT stores them, the
    generated keys (outbox.id) in the rows' order; a refused row fails the same. SQLite:
    as before (decision 0151)."""
    import psycopg

    postgres = engine.dialect.name == "postgresql"
    count = 37
    with session_factory.begin() as session:
        session.execute(insert(Resource.__table__), _resources("sa1-", count))
        session.execute(insert(Resource.__table__), _resources("sa2-", 1))
        session.execute(insert(Outbox.__table__), _outbox("sa1-", count))
    calls: list[str] = []
    for name in ("execute", "executemany"):
        original = getattr(psycopg.Cursor, name)

        def counted(self: Any, *a: Any, _name: str = name, _f: Any = original, **k: Any) -> Any:
            calls.append(f"{_name} {str(a[0]).split('(')[0].split()[-1]} {a[0].count('), (')}")
            return _f(self, *a, **k)

        monkeypatch.setattr(psycopg.Cursor, name, counted)
    with session_factory.begin() as session:
        insert_rows(session, Resource.__table__, _resources("one1-", count))  # 37: an INSERT
        insert_rows(session, Resource.__table__, _resources("one2-", 1))  # one row: execute
        insert_rows(session, Outbox.__table__, _outbox("one1-", count))
        with pytest.raises(IntegrityError) as refused, session.begin_nested():
            insert_rows(session, Resource.__table__, _resources("one1-", 3))
    monkeypatch.undo()
    assert is_unique_violation(refused.value) and is_refusal(refused.value)
    if postgres:  # one statement a call, every row in it (COPY from 64 rows, not here)
        assert [c for c in calls if " resource " in c or " outbox " in c] == [
            f"execute resource {count - 1}",
            "execute resource 0",
            f"execute outbox {count - 1}",
            "execute resource 2",
        ]
    else:
        assert calls == []
    for table, key, prefix, n in (
        (Resource.__table__, "id", "1-", count),
        (Resource.__table__, "id", "2-", 1),
        (Outbox.__table__, "resource_key", "1-", count),
    ):
        by_sqlalchemy = _stored(engine, table, key, "sa" + prefix)
        assert len(by_sqlalchemy) == n
        assert _stored(engine, table, key, "one" + prefix) == by_sqlalchemy, table.name
    with engine.connect() as conn:  # the generated keys in the rows' order
        order = [
            row[0] - _base("one1-")
            for row in conn.execute(
                text("SELECT resource_key FROM outbox WHERE resource_key >= :lo"
                     " AND resource_key < :hi ORDER BY id"),
                {"lo": _base("one1-"), "hi": _base("one1-") + 100},
            )
        ]  # fmt: skip
    assert order == list(range(count))

"""Migration 0028 on a database that holds data (SQLite, and PostgreSQL in the -m db pass):
the search index's dates become integer microseconds on SQLite (decision 0073). A store
written at head is downgraded to 0027 (the dates as SQLite's UTC text) and upgraded again:
every row keeps its row id and values (the dates to the microsecond, before 1970 too),
0024's searches and the date searches and sorts answer exactly as the store written at head
did, and a save after the upgrade is found. PostgreSQL: nothing changes (``timestamptz``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, text

from adapter.store import make_engine, migrate, save_resources
from adapter.store import session_factory as make_factory
from adapter.store.engine import downgrade
from tests.api.search_fixtures import T0
from tests.integration.index_0024 import rows_0024
from tests.integration.keyed_rows import as_compared
from tests.integration.test_migration_0018 import search_answers as _answers
from tests.integration.test_migration_0024 import QUERIES as QUERIES_0024
from tests.integration.test_migration_0024 import _save

# dates at the edges of the conversion: before 1970, fractions of a second, a zone, a year
# far ahead, a day, a month
_DATED = [
    {"resourceType": "Patient", "id": "old", "birthDate": "1901-03-04"},
    {"resourceType": "Patient", "id": "epoch", "birthDate": "1969-12-31"},
    {"resourceType": "Patient", "id": "month", "birthDate": "1988-07"},
    {
        "resourceType": "Specimen",
        "id": "frac",
        "collection": {"collectedDateTime": "2026-05-01T08:30:00.123456+08:00"},
    },
    {
        "resourceType": "Specimen",
        "id": "far",
        "collection": {"collectedDateTime": "2999-12-31T23:59:59Z"},
    },
]
QUERIES: list[tuple[str, list[tuple[str, str]]]] = [
    *QUERIES_0024,
    ("Observation", [("date", "ge2026-05-04")]),
    ("Observation", [("date", "lt2026-05-04T01:00:00Z")]),
    ("Observation", [("date", "2026-05-03")]),
    ("Observation", [("date", "ap2026-05-05"), ("_sort", "date")]),
    ("Observation", [("_sort", "-date")]),
    ("Observation", [("_sort", "date")]),
    ("Patient", [("birthdate", "lt1970-01-01")]),
    ("Patient", [("birthdate", "1969-12-31")]),
    ("Patient", [("birthdate", "1988")]),
    ("Patient", [("birthdate", "sa1901-03-04"), ("_sort", "-birthdate")]),
    ("Specimen", [("collected", "2026-05-01T00:30:00.123456Z")]),
    ("Specimen", [("collected", "gt2026-05-01T00:30:00.123Z")]),
    ("Specimen", [("collected", "ge2999-12-31")]),
    ("Specimen", [("_sort", "collected")]),
]


def _save_dated(engine: Engine) -> None:
    _save(engine)
    with make_factory(engine).begin() as session:
        save_resources(session, _DATED, message_id=None, now=T0 + timedelta(days=1))


def _rows(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return rows_0024(conn)


def _stored_types(engine: Engine) -> set[str]:
    """How SQLite holds the dates (``typeof``); PostgreSQL: the column's type."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            query = "SELECT DISTINCT typeof(value_date_start) FROM search_index WHERE kind = 3"
        else:
            query = (
                "SELECT data_type FROM information_schema.columns WHERE table_schema ="
                " current_schema() AND table_name = 'search_index'"
                " AND column_name = 'value_date_start'"
            )
        return set(conn.execute(text(query)).scalars())


def test_0028_dates_as_integers_answer_as_before(
    database_url: str, blank_database_url: str
) -> None:
    head, old = make_engine(database_url), make_engine(blank_database_url)
    sqlite = head.dialect.name == "sqlite"
    try:
        _save_dated(head)
        expected = _answers(head, QUERIES)
        assert all(ids for ids, _, _ in expected[len(QUERIES_0024) :])  # every date query finds
        assert expected[-4][0] == ["frac"] and expected[-2][0] == ["far"]
        assert "frac" not in expected[-3][0]  # 123456 µs is after .123 s: found by gt
        written = _rows(head)
        dates = {
            (r["value_date_start"], r["value_date_end"]) for r in written if r["kind"] == "date"
        }
        assert (
            datetime(2026, 5, 1, 0, 30, 0, 123456, tzinfo=UTC),
            datetime(2026, 5, 1, 0, 30, 0, 123457, tzinfo=UTC),
        ) in dates
        assert _stored_types(head) == ({"integer"} if sqlite else {"timestamp with time zone"})

        migrate(old)
        _save_dated(old)
        downgrade(old, "0027")
        assert _stored_types(old) == ({"text"} if sqlite else {"timestamp with time zone"})
        if sqlite:  # 0027's form: SQLite's UTC text, to the microsecond
            with old.connect() as conn:
                held = set(
                    conn.execute(
                        text("SELECT value_date_start FROM search_index WHERE kind = 3")
                    ).scalars()
                )
            assert {"1901-03-03 16:00:00.000000", "2026-05-01 00:30:00.123456"} <= held

        migrate(old)
        assert _stored_types(old) == _stored_types(head)
        upgraded = _rows(old)
        assert as_compared(old, [_without_key(r) for r in upgraded]) == as_compared(
            old, [_without_key(r) for r in written]
        )
        assert _answers(old, QUERIES) == expected

        # a save after the upgrade: written and found as integers
        late = {"resourceType": "Patient", "id": "late", "birthDate": "1950-06-15"}
        with make_factory(old).begin() as session:
            save_resources(session, [late], message_id=None, now=T0 + timedelta(days=2))
        found = _answers(old, [("Patient", [("birthdate", "1950-06-15")])])
        assert found[0][0] == ["late"]
        assert _stored_types(old) == _stored_types(head)

        rows_before = _rows(old)
        downgrade(old, "0027")
        migrate(old)
        assert _rows(old) == rows_before
    finally:
        head.dispose()
        old.dispose()


def _without_key(row: dict[str, Any]) -> dict[str, Any]:
    """A row without what depends on the store it was written in (its ids)."""
    return {k: v for k, v in row.items() if k not in ("row_id", "resource_key", "system_id")}

"""Migration 0026 on a database that holds data (SQLite, and PostgreSQL in the -m db pass):
a store in 0024's form (index rows naming their resource type, parameter and kind by name)
is upgraded; every row keeps its row id and values and names its (type, parameter, kind) by
``param_id``, ``search_param`` holds each triple once, and 0024's 23 searches (with their
totals and included resources) answer exactly as a store written at head. A save after the
upgrade reuses the known triples and adds a new one once; the downgrade gives back the
rows by name, and an upgrade again answers the same."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, MetaData, Table, inspect, select, text

from adapter.store import make_engine, migrate, save_resources
from adapter.store import session_factory as make_factory
from adapter.store.engine import downgrade
from tests.api.search_fixtures import T0
from tests.integration.index_0024 import columns_0024, rows_0024
from tests.integration.keyed_rows import as_compared
from tests.integration.test_migration_0018 import search_answers as _answers
from tests.integration.test_migration_0024 import QUERIES, _save

_NEW_TYPE = {"resourceType": "Specimen", "id": "late-s", "subject": {"reference": "Patient/pa"}}
_LATE_OBS = {
    "resourceType": "Observation",
    "id": "late",
    "status": "final",
    "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}]},
    "subject": {"reference": "Patient/pa"},
}


def _rows_by_name(engine: Engine) -> list[dict[str, Any]]:
    """The index rows in 0024's form: read so at head, as they are at 0024."""
    with engine.connect() as conn:
        if _has_table(engine, "search_param"):
            return rows_0024(conn)
        return [
            dict(r._mapping)
            for r in conn.execute(select(_INDEX_0024).order_by(_INDEX_0024.c.row_id))
        ]


_INDEX_0024 = Table("search_index", MetaData(), *columns_0024())


def _has_table(engine: Engine, name: str) -> bool:
    return name in inspect(engine).get_table_names()


def _triples(engine: Engine) -> list[tuple[str, str, int]]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT resource_type, param, kind FROM search_param"))
        return sorted(tuple(r) for r in rows)


def _columns(engine: Engine) -> set[str]:
    return {c["name"] for c in inspect(engine).get_columns("search_index")}


def test_0026_names_rows_by_param_id_and_answers_as_before(
    database_url: str, blank_database_url: str
) -> None:
    head, old = make_engine(database_url), make_engine(blank_database_url)
    try:
        _save(head)
        expected = _answers(head, QUERIES)
        assert len(QUERIES) == 27 and all(ids or extra for ids, _, extra in expected[:16])
        written = _rows_by_name(head)

        # a store at 0024: written at head, then downgraded (0026's downgrade)
        migrate(old)
        _save(old)
        assert _answers(old, QUERIES) == expected
        downgrade(old, "0024")
        assert not _has_table(old, "search_param")
        assert {"resource_type", "param", "kind"} <= _columns(old)
        assert "param_id" not in _columns(old)
        at_0024 = _rows_by_name(old)
        # PostgreSQL: the values, not their order (a string value comes back from 0044's
        # downgrade after its resource's rows, its token ids from 0043's after those, where
        # head reads both from one array in id order: keyed_rows.as_compared)
        assert as_compared(old, [_without_key(r) for r in at_0024]) == as_compared(
            old, [_without_key(r) for r in written]
        )
        assert {r["kind"] for r in at_0024} == {
            "token",
            "string",
            "date",
            "reference",
            "uri",
            "quantity",
        }

        migrate(old)
        assert {"resource_type", "param"}.isdisjoint(_columns(old))
        # row ids, values and names kept (PostgreSQL: the values, keyed_rows.as_compared)
        assert as_compared(old, _rows_by_name(old)) == as_compared(old, at_0024)
        triples = _triples(old)
        names = {(r["resource_type"], r["param"], r["kind"]) for r in at_0024}
        assert len(triples) == len(set(triples)) == len(names)
        assert _answers(old, QUERIES) == expected

        # a save after the upgrade: known triples reused, a new type's added once
        with make_factory(old).begin() as session:
            save_resources(
                session, [_LATE_OBS, _NEW_TYPE], message_id=None, now=T0 + timedelta(days=1)
            )
        after = _triples(old)
        added = set(after) - set(triples)
        assert added and {t for t, _, _ in added} == {"Specimen"}
        assert len(after) == len(set(after))
        with old.connect() as conn:  # a row's key: its resource's and its number (0085)
            ids = conn.execute(text("SELECT resource_key, row_id FROM search_index")).all()
        assert len(ids) == len(set(ids))
        late = _answers(
            old,
            [
                ("Observation", [("code", "http://loinc.org|718-7"), ("patient", "pa")]),
                ("Specimen", [("patient", "pa")]),
            ],
        )
        assert "late" in late[0][0] and late[1][0] == ["late-s"]
        before_down = _answers(old, QUERIES)
        rows_before = _rows_by_name(old)

        downgrade(old, "0024")
        # PostgreSQL: the values (0043's upgrade numbers the dictionary anew: a resource's
        # token values come back from its array in another order; keyed_rows.as_compared)
        assert as_compared(old, _rows_by_name(old)) == as_compared(old, rows_before)
        migrate(old)
        assert as_compared(old, _rows_by_name(old)) == as_compared(old, rows_before)
        assert _answers(old, QUERIES) == before_down
    finally:
        head.dispose()
        old.dispose()


def _without_key(row: dict[str, Any]) -> dict[str, Any]:
    """A row without what depends on the store it was written in (its ids)."""
    return {k: v for k, v in row.items() if k not in ("row_id", "resource_key", "system_id")}

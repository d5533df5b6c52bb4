"""Migration 0054 (decision 0147): SQLite's ``search_index`` rebuilt without its foreign key
to ``resource``, every row and value kept; down again with it. PostgreSQL: nothing changes
(no such key since 0021).

A store written at head (every kind of row and column: test_migration_0036's records) is
taken down to 0053: the key is there and every row holds the same values, of the same
types; up again: no key, the same rows, every search answers as before, and a save after
the upgrade is stored and found."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, inspect, text

from adapter.store import make_engine, migrate, save_resources
from adapter.store import session_factory as make_factory
from adapter.store.engine import downgrade
from tests.api.search_fixtures import T0
from tests.integration.test_migration_0018 import search_answers as _answers
from tests.integration.test_migration_0036 import _EVERY_KIND, QUERIES
from tests.integration.test_migration_0036 import _save as _save_0036

_COLUMNS = (
    "row_id", "resource_key", "value_date_start", "value_date_end", "value_number",
    "target_key", "param_id", "system_id", "kind", "code", "value", "value_norm", "reference",
    "code_full", "value_norm_full", "reference_full",
)  # fmt: skip


def _rows(engine: Engine) -> list[tuple[Any, ...]]:
    """Every row of the table, each value with its SQLite type."""
    typed = ", ".join(f"{c}, typeof({c})" for c in _COLUMNS)
    with engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                text(f"SELECT {typed} FROM search_index ORDER BY resource_key, kind, row_id")
            )
        ]


def _form(engine: Engine) -> tuple[bool, set[str]]:
    """(search_index has a foreign key to ``resource``, its indexes' names); on SQLite the
    table is WITHOUT ROWID with its key in every form."""
    with engine.connect() as conn:
        keys = inspect(conn).get_foreign_keys("search_index")
        indexes = {i["name"] for i in inspect(conn).get_indexes("search_index")}
        if engine.dialect.name == "sqlite":
            sql = conn.execute(
                text("SELECT sql FROM sqlite_master WHERE name = 'search_index'")
            ).scalar_one()
            assert "WITHOUT ROWID" in sql.upper()
            key = inspect(conn).get_pk_constraint("search_index")["constrained_columns"]
            assert key == ["resource_key", "kind", "row_id"]
    return "resource" in {k["referred_table"] for k in keys}, indexes


def test_0054_foreign_key_dropped_and_back_every_row_kept(blank_database_url: str) -> None:
    engine = make_engine(blank_database_url)
    sqlite = engine.dialect.name == "sqlite"
    try:
        migrate(engine)
        _save_0036(engine)
        has_key, indexes = _form(engine)
        assert not has_key
        if sqlite:
            assert len([i for i in indexes if i.startswith("ix_search_index_")]) == 8
        expected = _answers(engine, QUERIES)
        assert all(ids for ids, _, _ in expected[-6:])  # each kind of value is found
        stored = _rows(engine) if sqlite else []
        assert not sqlite or len(stored) > 20

        downgrade(engine, "0053")
        assert _form(engine) == (sqlite, indexes)  # the key back on SQLite, the same indexes
        if sqlite:
            assert _rows(engine) == stored
        assert _answers(engine, QUERIES) == expected

        migrate(engine)
        assert _form(engine) == (False, indexes)
        if sqlite:
            assert _rows(engine) == stored
        assert _answers(engine, QUERIES) == expected

        # a save after the upgrade: a changed resource and a new one, stored and found
        changed = {**_EVERY_KIND[1], "valueQuantity": {"value": 8.5, "unit": "mmol/L"}}
        new = {**_EVERY_KIND[1], "id": "kinds-new"}
        with make_factory(engine).begin() as session:
            save_resources(session, [changed, new], message_id=None, now=T0 + timedelta(days=6))
        found = _answers(
            engine, [("Observation", [("subject", "Patient/kinds"), ("_sort", "_id")])]
        )
        assert found[0][0] == ["kinds-new", "kinds-o"]
        after = _rows(engine) if sqlite else []
        downgrade(engine, "0053")
        if sqlite:
            assert _rows(engine) == after
        migrate(engine)
        if sqlite:
            assert _rows(engine) == after
    finally:
        engine.dispose()

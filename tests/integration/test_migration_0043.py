"""Migration 0043 on a database that holds data (SQLite, and PostgreSQL in the -m db pass):
on PostgreSQL the token rows whose value can move become dictionary ids in their
resource's ``search_terms.toks`` (decision 0103); SQLite keeps its rows.

A store written at head (0036's data set: values of every kind, a long display, identifiers,
contact points) is taken down to 0042: on PostgreSQL every array comes back as its rows.
Upgraded again, every token value is the same multiset of (resource, parameter, system,
code, display), no movable row is left, each array is sorted and distinct, and every search
answers as the store written at head; a save after the upgrade replaces the resource's
array."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, inspect, text

from adapter.store import make_engine, migrate, save_resources
from adapter.store import session_factory as make_factory
from adapter.store.engine import downgrade
from adapter.store.search_tokens import index_rows_sql, moves
from tests.api.search_fixtures import T0
from tests.integration.test_migration_0018 import search_answers as _answers
from tests.integration.test_migration_0036 import _EVERY_KIND, QUERIES, _save


def _source(engine: Engine) -> str:
    with engine.connect() as conn:
        tables = inspect(conn).get_table_names()
    return index_rows_sql() if "search_token" in tables else "search_index"


def _token_values(engine: Engine) -> Counter[tuple[Any, ...]]:
    """(resource, parameter, system, code, display, ...) of every token value, either form."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT resource_key, param_id, system_id, code, value, value_norm, value_number,"
                f" code_full, value_norm_full FROM {_source(engine)} AS s WHERE s.kind = 1"
            )
        )
        return Counter(tuple(row) for row in rows)


def _movable_rows(engine: Engine) -> int:
    """Token rows of search_index that 0043 would move (``moves``, a whole code)."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT p.param FROM search_index s JOIN search_param p"
                " ON p.param_id = s.param_id WHERE s.kind = 1 AND s.code IS NOT NULL"
                " AND s.code_full IS NULL AND s.value_norm_full IS NULL AND s.value IS NULL"
                " AND s.value_number IS NULL"
            )
        ).scalars()
        return sum(1 for param in rows if moves(param))


def _arrays(engine: Engine) -> list[list[int]]:
    with engine.connect() as conn:
        return [list(a) for a in conn.execute(text("SELECT toks FROM search_terms")).scalars()]


def test_0043_moves_token_values_to_arrays_and_back(blank_database_url: str) -> None:
    engine = make_engine(blank_database_url)
    pg = engine.dialect.name == "postgresql"
    try:
        migrate(engine)
        _save(engine)
        expected = _answers(engine, QUERIES)
        assert sum(bool(ids) for ids, _, _ in expected) > len(QUERIES) // 2
        values = _token_values(engine)
        assert len(values) >= 20
        moved = _movable_rows(engine)
        assert moved == 0 if pg else moved > 10
        if pg:
            assert sum(map(len, _arrays(engine))) > 10
            # the rows that stay: identifiers, a cut display, contact points
            stay = text("SELECT count(*) FROM search_index WHERE kind = 1")
            with engine.connect() as conn:
                assert conn.execute(stay).scalar_one() > 0

        downgrade(engine, "0042")
        with engine.connect() as conn:
            assert "search_token" not in inspect(conn).get_table_names()
        assert _token_values(engine) == values  # every array back as its rows
        if not pg:  # PostgreSQL's search at head needs the dictionary: after the upgrade
            assert _answers(engine, QUERIES) == expected
        if pg:
            with engine.connect() as conn:  # the numbers unique per resource (0098)
                ids = conn.execute(text("SELECT resource_key, row_id FROM search_index")).all()
            assert len(ids) == len(set(ids))
            assert _movable_rows(engine) > 10

        migrate(engine)
        assert _token_values(engine) == values
        assert _movable_rows(engine) == (0 if pg else moved)
        if pg:
            arrays = _arrays(engine)
            assert all(a == sorted(set(a)) for a in arrays)
        assert _answers(engine, QUERIES) == expected

        # a save after the upgrade: the changed resource's values replace its old ones
        changed = {**_EVERY_KIND[1], "status": "cancelled"}
        with make_factory(engine).begin() as session:
            save_resources(session, [changed], message_id=None, now=T0 + timedelta(days=6))
        found = _answers(
            engine,
            [
                ("Observation", [("status", "cancelled"), ("_id", "kinds-o")]),
                ("Observation", [("status", _EVERY_KIND[1]["status"]), ("_id", "kinds-o")]),
            ],
        )
        assert found[0][0] == ["kinds-o"] and found[1][0] == []
    finally:
        engine.dispose()

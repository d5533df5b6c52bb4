"""Migration 0037 on a database that holds data (SQLite, and PostgreSQL in the -m db pass):
on PostgreSQL the reference rows that name a stored resource by key (``target_key``)
become one array per resource in ``search_terms`` (decision 0088); SQLite keeps its rows.

A store written at head (0036's data set: references of both forms, values of every kind)
is taken down to 0036: on PostgreSQL every array comes back as its rows. Upgraded again,
every (resource, parameter, target) is one element of its resource's array, no keyed row
is left, and every search answers as the store written at head; a save after the upgrade
replaces the changed resource's array."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, inspect, text

from adapter.store import make_engine, migrate, save_resources
from adapter.store import session_factory as make_factory
from adapter.store.engine import downgrade
from adapter.store.search_terms import SHIFT, TARGET_MAX
from adapter.store.search_tokens import rows_sql as token_rows_sql
from tests.api.search_fixtures import T0
from tests.integration.keyed_rows import NOT_OF_TYPE, UNTYPED_NUMBER
from tests.integration.test_migration_0018 import search_answers as _answers
from tests.integration.test_migration_0036 import _EVERY_KIND, QUERIES, _save

_KEYED = "kind = 4 AND target_key IS NOT NULL"


def _keyed_rows(engine: Engine) -> set[tuple[int, int, int]]:
    """(resource, parameter, target) of the references named by key, from either form."""
    found: set[tuple[int, int, int]] = set()
    with engine.connect() as conn:
        query = f"SELECT resource_key, param_id, target_key FROM search_index WHERE {_KEYED}"
        found.update(tuple(row) for row in conn.execute(text(query)))
        if "search_terms" in inspect(conn).get_table_names():
            for key, refs in conn.execute(text("SELECT resource_key, refs FROM search_terms")):
                assert refs == sorted(set(refs))  # each once, in order
                # a presence marker (target 0, migration 0051) is no reference by key
                found.update((key, k >> SHIFT, k & TARGET_MAX) for k in refs if k & TARGET_MAX)
    return found


def _counts(engine: Engine) -> tuple[int, int]:
    """(keyed rows in search_index, rows of search_terms; -1 when there is no table)."""
    with engine.connect() as conn:
        rows = conn.execute(text(f"SELECT count(*) FROM search_index WHERE {_KEYED}")).scalar()
        if "search_terms" not in inspect(conn).get_table_names():
            return int(rows or 0), -1
        terms = conn.execute(text("SELECT count(*) FROM search_terms")).scalar()
    return int(rows or 0), int(terms or 0)


def _source(conn: Any) -> str:
    """search_index, or since 0043 its rows and the token arrays as rows (decision 0103)."""
    if "search_token" in inspect(conn).get_table_names():
        return token_rows_sql()
    return "search_index"


def _other_rows(engine: Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        query = (
            # without the identifiers' types: two forms since 0042 (keyed_rows.NOT_OF_TYPE)
            f"SELECT resource_key, param_id, kind, code, value_norm, reference, {UNTYPED_NUMBER}"
            f" FROM {_source(conn)} s WHERE NOT ({_KEYED}) AND {NOT_OF_TYPE}"
            " ORDER BY 1, 2, 3, 4, 5, 6, 7"
        )
        rows = [tuple(row) for row in conn.execute(text(query))]
        if "search_terms" in inspect(conn).get_table_names():
            # since 0051 a reference with no value is a marker in the array (decision 0124)
            markers = conn.execute(
                text(
                    "SELECT resource_key, (k >> :shift)::int FROM search_terms,"
                    " unnest(refs) AS k WHERE k & :mask = 0"
                ),
                {"shift": SHIFT, "mask": TARGET_MAX},
            )
            rows += [(key, pid, 4, None, None, None, None) for key, pid in markers]
        return sorted(rows, key=repr)


def test_0037_moves_keyed_references_to_arrays_and_back(blank_database_url: str) -> None:
    engine = make_engine(blank_database_url)
    pg = engine.dialect.name == "postgresql"
    try:
        migrate(engine)
        _save(engine)
        expected = _answers(engine, QUERIES)
        assert sum(bool(ids) for ids, _, _ in expected) > len(QUERIES) // 2
        keyed, others = _keyed_rows(engine), _other_rows(engine)
        assert len(keyed) >= 5
        rows, terms = _counts(engine)
        assert (rows == 0 and terms > 0) if pg else (rows == len(keyed) and terms == -1)

        downgrade(engine, "0036")
        assert _counts(engine) == (len(keyed), -1)  # every array back as its rows
        assert _keyed_rows(engine) == keyed and _other_rows(engine) == others

        migrate(engine)
        assert _keyed_rows(engine) == keyed and _other_rows(engine) == others
        rows, terms = _counts(engine)
        assert (rows == 0 and terms > 0) if pg else (rows == len(keyed) and terms == -1)
        assert _answers(engine, QUERIES) == expected

        # a save after the upgrade: the changed resource's values replace its old ones
        moved = {**_EVERY_KIND[1], "subject": {"reference": "Patient/pz"}}
        with make_factory(engine).begin() as session:
            save_resources(session, [moved], message_id=None, now=T0 + timedelta(days=6))
        found = _answers(
            engine,
            [
                ("Observation", [("subject", "Patient/kinds")]),
                ("Observation", [("subject", "Patient/pz"), ("_id", "kinds-o")]),
            ],
        )
        assert found[0][0] == [] and found[1][0] == ["kinds-o"]
        with engine.connect() as conn:
            key = conn.execute(
                text("SELECT resource_key FROM resource WHERE id = 'kinds-o'")
            ).scalar_one()
        mine = {(p, t) for k, p, t in _keyed_rows(engine) if k == key}
        assert len(mine) == 1  # the new patient's key only
    finally:
        engine.dispose()

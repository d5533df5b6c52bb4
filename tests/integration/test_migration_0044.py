"""Migration 0044 on a database that holds data (SQLite, and PostgreSQL in the -m db pass):
on PostgreSQL the string rows whose texts are whole become ids of ``search_token`` (system
-1) in their resource's ``search_terms.toks`` (decision 0114); SQLite keeps its rows.

A store written at head (0036's data set: values of every kind, a long family name cut to
a key; with patients whose names and addresses repeat and one whose text differs from its
normalised form) is taken down to 0043: on PostgreSQL every string id comes back as its
row and leaves the arrays, the token ids staying. Upgraded again, every string value is
the same multiset of (resource, parameter, value, value_norm, ...), no movable string row
is left, each array is sorted and distinct, and every search answers as the store written
at head; a save after the upgrade replaces the resource's values."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, inspect, text

from adapter.store import make_engine, migrate, save_resources
from adapter.store import session_factory as make_factory
from adapter.store.engine import downgrade
from adapter.store.search_tokens import index_rows_sql
from tests.api.search_fixtures import T0
from tests.integration.test_migration_0018 import search_answers as _answers
from tests.integration.test_migration_0036 import QUERIES as QUERIES_0036
from tests.integration.test_migration_0036 import _save as _save_0036

_PATIENTS: list[dict[str, Any]] = [
    {
        "resourceType": "Patient",
        "id": f"mig44-{n}",
        "name": [{"text": family + given, "family": family, "given": [given]}],
        "address": [{"line": [line], "city": "青山县", "state": "湖南省", "postalCode": "415100"}],
    }
    for n, (family, given, line) in enumerate(
        [("张", "伟", "柳河镇新街村5组"), ("张", "敏", "石桥镇"), ("Zhang", "Wei", "Main St")]
    )
]
QUERIES = [
    *QUERIES_0036,
    ("Patient", [("family", "张")]),
    ("Patient", [("family:exact", "Zhang")]),
    ("Patient", [("name:contains", "伟")]),
    ("Patient", [("address", "湖南")]),
    ("Patient", [("address-city:exact", "青山县"), ("_sort", "given")]),
    ("Patient", [("family:missing", "true")]),
    ("Patient", [("_sort", "-family")]),
]


def _strings(engine: Engine) -> Counter[tuple[Any, ...]]:
    """(resource, parameter, value, value_norm, value_norm_full) of every string value."""
    with engine.connect() as conn:
        tables = inspect(conn).get_table_names()
        source = index_rows_sql() if "search_token" in tables and _pg(engine) else "search_index"
        rows = conn.execute(
            text(
                "SELECT resource_key, param_id, value, value_norm, value_norm_full, code,"
                f" system_id FROM {source} AS s WHERE s.kind = 2"
            )
        )
        return Counter(tuple(row) for row in rows)


def _pg(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def _string_rows(engine: Engine) -> tuple[int, int]:
    """String rows of search_index: (whole ones of an address parameter, any cut to a
    key)."""
    with engine.connect() as conn:
        whole, cut = conn.execute(
            text(
                "SELECT count(*) FILTER (WHERE s.value_norm_full IS NULL AND (p.param = 'address'"
                " OR p.param LIKE 'address-%')), count(s.value_norm_full) FROM search_index s"
                " JOIN search_param p ON p.param_id = s.param_id WHERE s.kind = 2"
            )
        ).one()
        return whole, cut


def _token_ids(engine: Engine) -> tuple[int, int, list[list[int]]]:
    """PostgreSQL: (dictionary rows of tokens, of strings, the arrays)."""
    with engine.connect() as conn:
        tokens, strings = conn.execute(
            text(
                "SELECT count(*) FILTER (WHERE system_id >= 0),"
                " count(*) FILTER (WHERE system_id = -1) FROM search_token"
            )
        ).one()
        arrays = [list(a) for a in conn.execute(text("SELECT toks FROM search_terms")).scalars()]
        return tokens, strings, arrays


def test_0044_moves_string_values_to_arrays_and_back(blank_database_url: str) -> None:
    engine = make_engine(blank_database_url)
    pg = _pg(engine)
    try:
        migrate(engine)
        _save_0036(engine)
        with make_factory(engine).begin() as session:
            save_resources(session, _PATIENTS, message_id=None, now=T0 + timedelta(days=5))
        expected = _answers(engine, QUERIES)
        assert sum(bool(ids) for ids, _, _ in expected) > len(QUERIES) // 2
        values = _strings(engine)
        assert len(values) >= 20
        whole, cut = _string_rows(engine)
        assert cut >= 1  # the long family name stays a row (as every name)
        assert whole == 0 if pg else whole > 10
        if pg:
            tokens, strings, arrays = _token_ids(engine)
            # 湖南省, 青山县, 415100 once per parameter (address and its part) for every
            # patient; 张 once as a family and once as a name (decision 0117)
            assert 0 < strings < whole + len(values)
            with engine.connect() as conn:
                shared = conn.execute(
                    text("SELECT count(*) FROM search_token WHERE system_id = -1 AND code = ''"
                         " AND value_norm IN ('湖南省', '青山县', '415100', '张')")
                ).scalar_one()  # fmt: skip
            assert shared == 8

        downgrade(engine, "0043")
        assert _strings(engine) == values  # every string id back as its row
        if not pg:  # PostgreSQL's search at head expects the dictionary's index: after
            assert _answers(engine, QUERIES) == expected
        if pg:
            with engine.connect() as conn:  # the numbers unique per resource (0098)
                ids = conn.execute(text("SELECT resource_key, row_id FROM search_index")).all()
                index = conn.execute(
                    text(
                        "SELECT 1 FROM pg_indexes WHERE indexname = 'ix_search_token_string'"
                        " AND schemaname = current_schema()"
                    )
                ).all()
            assert len(ids) == len(set(ids)) and index == []
            assert _token_ids(engine)[:2] == (tokens, 0)  # the token ids stay
            assert _string_rows(engine)[0] > 10

        migrate(engine)
        assert _strings(engine) == values
        assert _string_rows(engine) == ((0, cut) if pg else (whole, cut))
        if pg:
            tokens_again, strings_again, arrays = _token_ids(engine)
            assert (tokens_again, strings_again) == (tokens, strings)
            assert all(a == sorted(set(a)) for a in arrays)
        assert _answers(engine, QUERIES) == expected

        # a save after the upgrade: the changed resource's values replace its old ones
        changed = {**_PATIENTS[0], "name": [{"family": "王", "given": ["伟"]}]}
        with make_factory(engine).begin() as session:
            save_resources(session, [changed], message_id=None, now=T0 + timedelta(days=6))
        found = _answers(
            engine,
            [
                ("Patient", [("family", "王")]),
                ("Patient", [("family", "张"), ("_id", "mig44-0")]),
            ],
        )
        assert found[0][0] == ["mig44-0"] and found[1][0] == []
    finally:
        engine.dispose()

"""Migration 0046 on a database that holds data (SQLite, and PostgreSQL in the -m db pass):
on PostgreSQL the string rows of ``name``, ``family`` and ``given`` whose texts are whole
become ids of ``search_token`` (system -1) in their resource's ``search_terms.toks``, and
each resource with a name row gets that parameter's presence marker (system -2; decision
0117); SQLite keeps its rows.

A store written at head (0036's data set: values of every kind, a long family name cut to
a key; patients whose names repeat, one without a name) is taken down to 0045: on
PostgreSQL every name id comes back as its row and the markers leave the arrays, the
address ids and token ids staying. Upgraded again, every string value is the same multiset,
no movable name row is left, the markers are back, each array is sorted and distinct, and
every search answers as the store written at head; a save after the upgrade replaces the
resource's values."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, text

from adapter.store import make_engine, migrate, save_resources
from adapter.store import session_factory as make_factory
from adapter.store.engine import downgrade
from tests.api.search_fixtures import T0
from tests.integration.test_migration_0018 import search_answers as _answers
from tests.integration.test_migration_0036 import QUERIES as QUERIES_0036
from tests.integration.test_migration_0036 import _save as _save_0036
from tests.integration.test_migration_0044 import _pg, _strings

_PATIENTS: list[dict[str, Any]] = [
    {
        "resourceType": "Patient",
        "id": f"mig46-{n}",
        "name": [{"text": family + given, "family": family, "given": [given]}],
        "address": [{"line": [line], "city": "青山县", "state": "湖南省", "postalCode": "415100"}],
    }
    for n, (family, given, line) in enumerate(
        [("张", "伟", "柳河镇新街村5组"), ("张", "敏", "石桥镇"), ("Zhang", "Wei", "Main St")]
    )
] + [{"resourceType": "Patient", "id": "mig46-none", "gender": "male"}]
QUERIES = [
    *QUERIES_0036,
    ("Patient", [("family", "张")]),
    ("Patient", [("family:exact", "Zhang")]),
    ("Patient", [("name:contains", "伟")]),
    ("Patient", [("given", "w")]),
    ("Patient", [("family:missing", "true")]),
    ("Patient", [("name:missing", "false")]),
    ("Patient", [("_sort", "-family")]),
    ("Patient", [("_sort", "given"), ("address-city", "青山县")]),
    ("Patient", [("_sort", "name")]),
]


def _name_rows(engine: Engine) -> tuple[int, int]:
    """Name rows of search_index: (whole ones, any cut to a key)."""
    with engine.connect() as conn:
        whole, cut = conn.execute(
            text(
                "SELECT count(*) FILTER (WHERE s.value_norm_full IS NULL),"
                " count(s.value_norm_full) FROM search_index s JOIN search_param p"
                " ON p.param_id = s.param_id WHERE s.kind = 2"
                " AND p.param IN ('name', 'family', 'given')"
            )
        ).one()
        return whole, cut


def _dictionary(engine: Engine) -> tuple[int, int, int, list[list[int]]]:
    """PostgreSQL: (dictionary rows of tokens, of strings, of markers; the arrays)."""
    with engine.connect() as conn:
        tokens, strings, markers = conn.execute(
            text(
                "SELECT count(*) FILTER (WHERE system_id >= 0),"
                " count(*) FILTER (WHERE system_id = -1),"
                " count(*) FILTER (WHERE system_id = -2) FROM search_token"
            )
        ).one()
        arrays = [list(a) for a in conn.execute(text("SELECT toks FROM search_terms")).scalars()]
        return tokens, strings, markers, arrays


def _marked(engine: Engine) -> Counter[tuple[int, int]]:
    """PostgreSQL: (resource, marker's parameter) of every marker in an array."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT t.resource_key, d.param_id FROM search_terms t"
                " CROSS JOIN LATERAL unnest(t.toks) AS k"
                " JOIN search_token d ON d.token_id = k AND d.system_id = -2"
            )
        )
        return Counter(tuple(row) for row in rows)


def test_0046_moves_name_values_to_arrays_and_back(blank_database_url: str) -> None:
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
        whole, cut = _name_rows(engine)
        assert cut >= 1  # the long family name stays a row
        assert whole == 0 if pg else whole > 10
        if pg:
            tokens, strings, markers, _ = _dictionary(engine)
            marked = _marked(engine)
            assert markers >= 3  # name, family, given of each type with names
            # every named patient carries three, the cut family's resource too
            assert len(marked) >= 3 * 4 and set(marked.values()) == {1}

        downgrade(engine, "0045")
        assert _strings(engine) == values  # every name id back as its row
        if pg:
            with engine.connect() as conn:  # the numbers unique per resource (0098)
                ids = conn.execute(text("SELECT resource_key, row_id FROM search_index")).all()
            assert len(ids) == len(set(ids))
            tokens_down, strings_down, markers_down, _ = _dictionary(engine)
            assert (tokens_down, markers_down) == (tokens, 0)  # the token ids stay
            assert 0 < strings_down < strings  # the address values stay ids
            assert _marked(engine) == Counter()
            assert _name_rows(engine)[0] > 10
        else:  # PostgreSQL's search at head expects the names in the arrays and markers
            assert _answers(engine, QUERIES) == expected

        migrate(engine)
        assert _strings(engine) == values
        assert _name_rows(engine) == ((0, cut) if pg else (whole, cut))
        if pg:
            again = _dictionary(engine)
            assert again[:3] == (tokens, strings, markers)
            assert all(a == sorted(set(a)) for a in again[3])
            assert len(_marked(engine)) == len(marked)
        assert _answers(engine, QUERIES) == expected

        # a save after the upgrade: the changed resource's values replace its old ones
        changed = {**_PATIENTS[0], "name": [{"family": "王", "given": ["伟"]}]}
        with make_factory(engine).begin() as session:
            save_resources(session, [changed], message_id=None, now=T0 + timedelta(days=6))
        found = _answers(
            engine,
            [
                ("Patient", [("family", "王")]),
                ("Patient", [("family", "张"), ("_id", "mig46-0")]),
                ("Patient", [("family:missing", "true")]),
            ],
        )
        assert found[0][0] == ["mig46-0"] and found[1][0] == []
        assert "mig46-none" in found[2][0] and "mig46-0" not in found[2][0]
    finally:
        engine.dispose()

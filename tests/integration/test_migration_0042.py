"""Migration 0042 (decision 0098) on a database that holds data (SQLite, and PostgreSQL in
the -m db pass): on PostgreSQL ``search_index.row_id`` is the row's number among its
resource's rows, a smallint stored after ``kind``, given by the store; SQLite is unchanged
(its rows were numbered so since 0036).

A store written at head (0036's data set: values of every kind, ``_full`` columns) is
taken down to 0040: on PostgreSQL ``row_id`` is a bigint from a sequence again, unique over
the table, each resource's rows in their order. Its ids reversed, upgraded again: each
resource's rows numbered 0, 1, ... in the old ids' order, every value kept, every search
answering as at head; a save after it numbers its rows the same way."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, inspect, text

from adapter.store import make_engine, migrate, save_resources
from adapter.store import session_factory as make_factory
from adapter.store.engine import downgrade
from adapter.store.index_keys import KEY_CHARS
from adapter.store.resources import ROWS_MAX
from adapter.store.search_terms import ARRAY_ROW_FIRST as REFERENCE_ARRAY_FIRST
from adapter.store.search_terms import rows_sql as reference_rows_sql
from adapter.store.search_tokens import rows_sql as token_rows_sql
from tests.api.search_fixtures import T0
from tests.integration.test_migration_0018 import search_answers as _answers
from tests.integration.test_migration_0036 import _EVERY_KIND
from tests.integration.test_migration_0036 import QUERIES as QUERIES_0036
from tests.integration.test_migration_0036 import _save as _save_0036

_VALUES = (
    "resource_key, value_date_start, value_date_end, value_number, target_key, param_id,"
    " system_id, kind, code, value, value_norm, reference, code_full, value_norm_full,"
    " reference_full"
)
V2 = "http://terminology.hl7.org/CodeSystem/v2-0203"
_LONG_VALUE = "长" * KEY_CHARS + "-id"  # cut to a key in ``code``
_LONG_CODE = "C" * (KEY_CHARS + 5)  # a type's code cut to a key: stays a row


def _typed(system: str | None, code: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code} if system else {"code": code}]}


# identifiers with types (decision 0098): two types of one identifier, a long value, a long
# type code, a type without a system, two identifiers of one value
TYPED: dict[str, Any] = {
    "resourceType": "Patient",
    "id": "typed",
    "identifier": [
        {"system": "urn:a", "value": "T-1",
         "type": {"coding": [{"system": V2, "code": "MR"}, {"system": V2, "code": "PI"}]}},
        {"system": "urn:a", "value": _LONG_VALUE, "type": _typed(V2, "MR")},
        {"system": "urn:a", "value": "T-3", "type": _typed(V2, _LONG_CODE)},
        {"system": "urn:a", "value": "T-4", "type": _typed(None, "XX")},
        {"system": "urn:b", "value": "T-1", "type": _typed(V2, "NI")},
    ],
}  # fmt: skip
OF_TYPE_QUERIES: list[tuple[str, list[tuple[str, str]]]] = [
    ("Patient", [("identifier:of-type", f"{V2}|{code}|{value}")])
    for code, value in (
        ("MR", "T-1"), ("PI", "T-1"), ("NI", "T-1"), ("MR", _LONG_VALUE),
        (_LONG_CODE, "T-3"), ("MR", "T-3"), ("XX", "T-4"), ("MR", "T-9"), ("NI", "T-4"),
    )
] + [
    ("Patient", [("identifier:of-type", f"{V2}|MR|T-1,{V2}|XX|T-4")]),
    ("Patient", [("identifier:of-type", f"{V2}|MR|T-1"), ("_sort", "identifier")]),
    ("Observation", [("subject.identifier:of-type", f"{V2}|MR|T-1")]),
]  # fmt: skip
# as base answers them (every type as a row of its own)
OF_TYPE_FOUND = [["typed"]] * 5 + [[]] * 4 + [["typed"], ["typed"], ["typed-o"]]
QUERIES = [*QUERIES_0036, *OF_TYPE_QUERIES]


def _save(engine: Engine) -> None:
    _save_0036(engine)
    observation = {**_EVERY_KIND[1], "id": "typed-o", "subject": {"reference": "Patient/typed"}}
    with make_factory(engine).begin() as session:
        save_resources(session, [TYPED, observation], message_id=None, now=T0 + timedelta(days=5))


# PostgreSQL at 0042: the 8-byte columns, the 4-byte ones, kind and row_id, the texts
_ORDER_0042 = [
    "resource_key", "value_date_start", "value_date_end", "value_number", "target_key",
    "param_id", "system_id", "kind", "row_id", "code", "value", "value_norm", "reference",
    "code_full", "value_norm_full", "reference_full",
]  # fmt: skip
_ORDER_0040 = [
    "row_id", "resource_key", "value_date_start", "value_date_end", "value_number",
    "param_id", "system_id", "kind", "code", "value", "value_norm", "reference", "code_full",
    "value_norm_full", "reference_full", "target_key",
]  # fmt: skip
_INDEXES = {
    "ix_search_index_resource", "ix_search_index_token", "ix_search_index_uri",
    "ix_search_index_string", "ix_search_index_date", "ix_search_index_date_end",
    "ix_search_index_quantity", "ix_search_index_reference",
}  # fmt: skip


def _rows(engine: Engine) -> dict[int, list[tuple[Any, ...]]]:
    """Each resource key's rows in row id order, by parameter name: without the
    ``:of-type`` rows and the types identifier rows carry (``_types`` reads both forms)."""
    out: dict[int, list[tuple[Any, ...]]] = {}
    with engine.connect() as conn:
        columns = ", ".join(f"s.{c.strip()}" for c in _VALUES.split(","))
        query = (
            f"SELECT p.param, {columns} FROM {_source(conn)} s"
            " JOIN search_param p ON p.param_id = s.param_id ORDER BY resource_key, row_id"
        )
        for row in conn.execute(text(query)):
            name, values = row[0], dict(row._mapping)
            if name.endswith(":of-type"):
                continue
            if values["kind"] == 1:
                values["value"] = values["value_number"] = None
            values["param_id"] = name
            out.setdefault(row[1], []).append(tuple(values.values())[1:])
    return out


def _source(conn: Any) -> str:
    """search_index, or on PostgreSQL since 0043 its rows and the token arrays as rows."""
    if "search_token" in inspect(conn).get_table_names():
        # since 0051 a reference with no value is a marker in the reference arrays (0124)
        columns = f"row_id, {_VALUES}"
        markers = (
            f"SELECT {columns} FROM {reference_rows_sql()} AS r"
            f" WHERE r.row_id >= {REFERENCE_ARRAY_FIRST} AND r.target_key IS NULL"
        )
        return f"(SELECT {columns} FROM {token_rows_sql()} AS t UNION ALL {markers})"
    return "search_index"


def _in_order(engine: Engine, rows: dict[int, list[tuple[Any, ...]]]) -> Any:
    """``rows`` as compared: on PostgreSQL each resource's rows as a sorted list. Since
    0043 a resource's token values come back from its array in the dictionary's order (its
    upgrade numbers the dictionary anew), not in their rows' order; the numbering itself
    is checked by ``_numbered``."""
    if engine.dialect.name != "postgresql":
        return rows
    return {key: sorted(values, key=repr) for key, values in rows.items()}


def _types(engine: Engine) -> list[tuple[Any, ...]]:
    """(resource, identifier's row name, its value, type system id, type code) of every
    identifier type, from either form."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT s.resource_key, p.param, s.system_id, s.code, s.code_full, s.value,"
                " s.value_number FROM search_index s JOIN search_param p"
                " ON p.param_id = s.param_id WHERE s.kind = 1 AND s.value IS NOT NULL"
            )
        )
        out = []
        for key, name, system, code, full, value, number in rows:
            if name.endswith(":of-type"):
                out.append((key, name[: -len(":of-type")], value, system, full or code))
            else:  # carried: value the type's code, value_number its system
                out.append(
                    (key, name, full or code, None if number is None else int(number), value)
                )
    return sorted(out, key=repr)


def _of_type_rows(engine: Engine, rid: str = "typed") -> int:
    """How many ``:of-type`` rows the resource ``rid`` has."""
    with engine.connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT count(*) FROM search_index s JOIN search_param p"
                    " ON p.param_id = s.param_id WHERE p.param LIKE '%\\:of-type'"
                    " AND s.resource_key = (SELECT resource_key FROM resource WHERE id = :rid)"
                ),
                {"rid": rid},
            ).scalar_one()
        )


def _row_ids(engine: Engine) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    with engine.connect() as conn:
        query = "SELECT resource_key, row_id FROM search_index ORDER BY resource_key, row_id"
        for key, row_id in conn.execute(text(query)):
            out.setdefault(key, []).append(row_id)
    return out


def _numbered(engine: Engine, contiguous: bool = True) -> bool:
    """Each resource's rows numbered 0, 1, ...; not ``contiguous``: the numbers distinct
    (SQLite after 0042's upgrade keeps its numbers, less the ``:of-type`` rows folded;
    PostgreSQL after 0043's upgrade, less the token rows that became array elements)."""
    ids = _row_ids(engine).values()
    if contiguous:
        return all(numbers == list(range(len(numbers))) for numbers in ids)
    return all(numbers == sorted(set(numbers)) and numbers[0] >= 0 for numbers in ids)


def _form(engine: Engine) -> tuple[list[str], str, str | None, set[str]]:
    """(column order, row_id's type, its default, the indexes) on PostgreSQL."""
    with engine.connect() as conn:
        columns = inspect(conn).get_columns("search_index")
        indexes = {i["name"] for i in inspect(conn).get_indexes("search_index")}
    row_id = next(c for c in columns if c["name"] == "row_id")
    return [c["name"] for c in columns], str(row_id["type"]), row_id["default"], indexes


def test_0042_numbers_each_resources_rows_and_back(blank_database_url: str) -> None:
    engine = make_engine(blank_database_url)
    pg = engine.dialect.name == "postgresql"
    try:
        migrate(engine)
        _save(engine)
        expected = _answers(engine, QUERIES)
        assert [ids for ids, _, _ in expected[len(QUERIES_0036) :]] == OF_TYPE_FOUND
        assert all(ids for ids, _, _ in expected[len(QUERIES_0036) - 6 : len(QUERIES_0036)])
        at_head, types = _rows(engine), _types(engine)
        # the first type of each identifier on its row: the second of one identifier and
        # a type whose code is cut to a key stay rows (base: a row for each of the six)
        assert _of_type_rows(engine) == 2
        assert len(types) == 7  # the six of "typed", one of the 0032 data set
        assert sum(len(rows) for rows in at_head.values()) > 50
        assert _numbered(engine)  # the store numbers them, PostgreSQL too (base: a sequence)
        if pg:
            order, kind, default, indexes = _form(engine)
            assert (order, kind, default) == (_ORDER_0042, "SMALLINT", None)
            assert indexes == _INDEXES

        downgrade(engine, "0040")
        # every value, each resource's rows in their order (PostgreSQL: ``_in_order``)
        assert _in_order(engine, _rows(engine)) == _in_order(engine, at_head)
        assert _types(engine) == types and _of_type_rows(engine) == 6  # every type a row
        if not pg:  # PostgreSQL's search at head needs 0043's dictionary: after the upgrade
            assert _answers(engine, QUERIES) == expected
        if pg:
            order, kind, default, indexes = _form(engine)
            assert (order, kind, indexes) == (_ORDER_0040, "BIGINT", _INDEXES)
            assert default is not None and "search_index_row_id_seq" in default
            flat = sorted(i for ids in _row_ids(engine).values() for i in ids)
            assert len(set(flat)) == len(flat)  # numbered over the table, as 0040 writes them
            with engine.begin() as conn:  # the sequence continues after them
                conn.execute(
                    text(
                        "INSERT INTO search_index (resource_key, param_id, kind, code)"
                        " SELECT resource_key, param_id, kind, 'extra' FROM search_index"
                        " WHERE kind = 1 ORDER BY resource_key DESC, row_id LIMIT 1"
                    )
                )
                added = conn.execute(
                    text("SELECT row_id FROM search_index WHERE code = 'extra'")
                ).scalar_one()
                assert added > flat[-1]
                conn.execute(text("DELETE FROM search_index WHERE code = 'extra'"))
            # the ids reversed: the upgrade's numbering must follow them
            with engine.begin() as conn:
                conn.execute(text("UPDATE search_index SET row_id = 1000000 - row_id"))
            reversed_rows = {key: rows[::-1] for key, rows in at_head.items()}
        else:
            reversed_rows = at_head  # SQLite: nothing changes, its key is the number
        assert _in_order(engine, _rows(engine)) == _in_order(engine, reversed_rows)

        migrate(engine)
        # every value kept, in the old ids' order
        assert _in_order(engine, _rows(engine)) == _in_order(engine, reversed_rows)
        assert _types(engine) == types
        # per identifier value one type on a row (T-1's two identifiers are one value)
        assert _of_type_rows(engine) == 3
        assert _numbered(engine, False)
        assert _answers(engine, QUERIES) == expected
        if pg:
            assert _form(engine) == (_ORDER_0042, "SMALLINT", None, _INDEXES)

        # a save after the upgrade: a changed resource and a new one, numbered and found
        changed = {**_EVERY_KIND[1], "valueQuantity": {"value": 8.5, "unit": "mmol/L"}}
        new = {**_EVERY_KIND[1], "id": "kinds-new"}
        typed = {**TYPED, "active": True}  # written again: each identifier's first type
        with make_factory(engine).begin() as session:
            save_resources(
                session, [changed, new, typed], message_id=None, now=T0 + timedelta(days=6)
            )
        found = _answers(
            engine, [("Observation", [("subject", "Patient/kinds"), ("_sort", "_id")])]
        )
        assert found[0][0] == ["kinds-new", "kinds-o"]
        assert _numbered(engine, False) and _of_type_rows(engine) == 2
        assert _types(engine) == types
        after_save, answers = _rows(engine), _answers(engine, QUERIES)
        assert [ids for ids, _, _ in answers[len(QUERIES_0036) :]] == OF_TYPE_FOUND
        downgrade(engine, "0040")
        assert _in_order(engine, _rows(engine)) == _in_order(engine, after_save)
        assert _of_type_rows(engine) == 6
        migrate(engine)
        assert _in_order(engine, _rows(engine)) == _in_order(engine, after_save)
        assert _numbered(engine, False)
        assert _types(engine) == types
        assert _answers(engine, QUERIES) == answers
    finally:
        engine.dispose()


def test_a_resource_with_more_rows_than_a_smallint_numbers(database_url: str) -> None:
    """PostgreSQL refuses, with the reason, a resource whose rows ``row_id`` cannot number
    (more than 32,768); SQLite stores it. One row fewer is stored on both."""
    engine = make_engine(database_url)
    pg = engine.dialect.name == "postgresql"

    def patient(pid: str, count: int) -> dict[str, Any]:
        # identifiers only: rows on both databases (``active`` is an array element on
        # PostgreSQL since 0043, decision 0103)
        ids = [{"system": "urn:x", "value": f"v{n}"} for n in range(count)]
        return {"resourceType": "Patient", "id": pid, "identifier": ids}

    try:
        factory = make_factory(engine)
        with factory.begin() as session:  # exactly ROWS_MAX rows
            save_resources(session, [patient("fits", ROWS_MAX)], message_id=None, now=T0)
        with engine.connect() as conn:
            count = conn.execute(
                text(
                    "SELECT count(*), max(row_id) FROM search_index WHERE resource_key ="
                    " (SELECT resource_key FROM resource WHERE id = 'fits')"
                )
            ).one()
        assert tuple(count) == (ROWS_MAX, ROWS_MAX - 1)
        if pg:
            refused = pytest.raises(ValueError, match="more than 32768 search index rows")
            with refused, factory.begin() as session:
                save_resources(session, [patient("over", ROWS_MAX + 1)], message_id=None, now=T0)
        else:
            with factory.begin() as session:
                save_resources(session, [patient("over", ROWS_MAX + 1)], message_id=None, now=T0)
    finally:
        engine.dispose()

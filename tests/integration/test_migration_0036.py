"""Migration 0036 on a database that holds data (SQLite, and PostgreSQL in the -m db pass):
on SQLite the search index becomes a WITHOUT ROWID table keyed by (resource_key, kind,
row_id), ``row_id`` the row's number among its resource's rows (decision 0085).

A store written at head (the linked record set, 0028's dates, 0032's references of both
forms, and values of every kind, long ones among them) is taken down to 0035, where every
row keeps its values and each resource's rows their order under row ids numbered over the
table; the row ids are then reversed, so that the upgrade's numbering can only come from
them. Upgraded, every row holds the same values and its resource's rows are numbered 0,
1, ... in the old row ids' order; every search answers as the store written at head; a
save after the upgrade is numbered and found; down again every value is kept and each
resource's rows keep their order; up again gives the same rows. PostgreSQL keeps its
table as it is (the migration changes nothing there)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, inspect, text

from adapter.store import make_engine, migrate, save_resources
from adapter.store import session_factory as make_factory
from adapter.store.engine import downgrade
from tests.api.search_fixtures import T0
from tests.integration.keyed_rows import NOT_OF_TYPE, UNTYPED_NUMBER, UNTYPED_VALUE, index_sql
from tests.integration.test_migration_0018 import search_answers as _answers
from tests.integration.test_migration_0032 import QUERIES as QUERIES_0032
from tests.integration.test_migration_0032 import _save as _save_0032

_LONG = "长" * 120 + "-long-value-" + "x" * 150  # over index_keys.KEY_CHARS: a _full column
_EVERY_KIND: list[dict[str, Any]] = [
    {
        "resourceType": "Patient",
        "id": "kinds",
        "meta": {"profile": ["http://example.org/fhir/StructureDefinition/lab-patient"]},
        "identifier": [{"system": "urn:oid:1.2.156.1.long", "value": _LONG}],
        "name": [{"family": _LONG, "given": ["七"]}],
        "birthDate": "1961-02-03",
        "generalPractitioner": [{"reference": "https://other.example.org/fhir/" + _LONG}],
    },
    {
        "resourceType": "Observation",
        "id": "kinds-o",
        "status": "final",
        "code": {"coding": [{"system": "http://example.org/local", "code": _LONG}]},
        "subject": {"reference": "Patient/kinds"},
        "effectiveDateTime": "2026-05-06T09:30:00+08:00",
        "valueQuantity": {"value": 7.25, "unit": "mmol/L", "system": "http://unitsofmeasure.org",
                          "code": "mmol/L"},
    },
]  # fmt: skip
_KINDS_QUERIES: list[tuple[str, list[tuple[str, str]]]] = [
    ("Patient", [("_profile", "http://example.org/fhir/StructureDefinition/lab-patient")]),
    ("Patient", [("identifier", f"urn:oid:1.2.156.1.long|{_LONG}")]),
    ("Patient", [("family:exact", _LONG)]),
    ("Observation", [("code", f"http://example.org/local|{_LONG}")]),
    ("Observation", [("value-quantity", "7.25|http://unitsofmeasure.org|mmol/L")]),
    ("Observation", [("subject", "Patient/kinds"), ("_sort", "-date")]),
]
QUERIES = [*QUERIES_0032, *_KINDS_QUERIES]

_COLUMNS = (
    "resource_key, value_date_start, value_date_end, value_number, target_key, param_id,"
    " system_id, kind, code, value, value_norm, reference, code_full, value_norm_full,"
    " reference_full"
)


def _save(engine: Engine) -> None:
    _save_0032(engine)
    with make_factory(engine).begin() as session:
        save_resources(session, _EVERY_KIND, message_id=None, now=T0 + timedelta(days=5))


def _rows(engine: Engine) -> dict[int, list[tuple[Any, ...]]]:
    """Each resource key's rows (every column but row_id), in row id order."""
    out: dict[int, list[tuple[Any, ...]]] = {}
    with engine.connect() as conn:
        # without the identifiers' types: two forms since 0042 (keyed_rows.NOT_OF_TYPE)
        columns = _COLUMNS.replace(" value,", f" {UNTYPED_VALUE},").replace(
            " value_number,", f" {UNTYPED_NUMBER},"
        )
        query = (
            f"SELECT {columns} FROM {index_sql(conn)} s WHERE {NOT_OF_TYPE}"
            " ORDER BY resource_key, row_id"
        )
        for row in conn.execute(text(query)):
            out.setdefault(row[0], []).append(tuple(row))
    if engine.dialect.name == "postgresql":
        # a resource's rows as a multiset: its references by key are an array since 0037,
        # which keeps no order among its rows (decision 0088)
        out = {key: sorted(rows, key=repr) for key, rows in out.items()}
    return out


def _row_ids(engine: Engine) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    with engine.connect() as conn:
        query = "SELECT resource_key, row_id FROM search_index ORDER BY resource_key, row_id"
        for key, row_id in conn.execute(text(query)):
            out.setdefault(key, []).append(row_id)
    return out


def _form(engine: Engine) -> tuple[bool, bool]:
    """(the table is WITHOUT ROWID keyed by (resource_key, kind, row_id), it has
    ix_search_index_resource)."""
    with engine.connect() as conn:
        indexes = {i["name"] for i in inspect(conn).get_indexes("search_index")}
        clustered = False
        if engine.dialect.name == "sqlite":
            sql = conn.execute(
                text("SELECT sql FROM sqlite_master WHERE name = 'search_index'")
            ).scalar_one()
            key = inspect(conn).get_pk_constraint("search_index")["constrained_columns"]
            clustered = "WITHOUT ROWID" in sql.upper()
            assert key == (["resource_key", "kind", "row_id"] if clustered else ["row_id"])
    return clustered, "ix_search_index_resource" in indexes


def _numbered(ids: dict[int, list[int]]) -> bool:
    """Each resource's rows numbered 0, 1, ... in order; past 0042 (decision 0098) SQLite's
    numbers keep the gaps of the ``:of-type`` rows it folded into their identifiers'."""
    return all(rows == sorted(set(rows)) and rows[0] >= 0 for rows in ids.values())


def test_0036_without_rowid_keeps_every_row_and_its_order(
    database_url: str, blank_database_url: str
) -> None:
    head, old = make_engine(database_url), make_engine(blank_database_url)
    sqlite = head.dialect.name == "sqlite"
    try:
        _save(head)
        expected = _answers(head, QUERIES)
        assert all(ids for ids, _, _ in expected[len(QUERIES_0032) :])  # each kind is found
        at_head = _rows(head)
        assert _numbered(_row_ids(head))  # the store numbers them (PostgreSQL since 0042)
        assert _form(head) == ((True, False) if sqlite else (False, True))
        with head.connect() as conn:
            rows = index_sql(conn)
            kinds = set(conn.execute(text(f"SELECT DISTINCT kind FROM {rows} s")).scalars())
            full = conn.execute(
                text(
                    "SELECT count(code_full), count(value_norm_full), count(reference_full),"
                    f" count(target_key), count(reference) FROM {rows} s"
                )
            ).one()
        assert kinds == {1, 2, 3, 4, 5, 6} and all(full)  # every kind of row and column

        migrate(old)
        _save(old)
        assert _rows(old) == at_head
        downgrade(old, "0035")
        assert _form(old) == (False, True)
        assert _rows(old) == at_head  # every value, each resource's rows in their order
        ids = _row_ids(old)
        flat = sorted(i for rows in ids.values() for i in rows)
        assert len(set(flat)) == len(flat)  # numbered over the table, as 0035 writes them
        # the row ids reversed: the upgrade's numbering must follow them
        with old.begin() as conn:
            conn.execute(text("UPDATE search_index SET row_id = 1000000 - row_id"))
        reversed_rows = {key: rows[::-1] for key, rows in at_head.items()}
        if not sqlite:  # multisets (_rows)
            reversed_rows = at_head
        assert _rows(old) == reversed_rows

        migrate(old)
        assert _form(old) == ((True, False) if sqlite else (False, True))
        assert _rows(old) == reversed_rows  # every value kept, in the old ids' order
        if sqlite:
            assert _numbered(_row_ids(old))
        assert _answers(old, QUERIES) == expected

        # a save after the upgrade: a changed resource and a new one, numbered and found
        changed = {**_EVERY_KIND[1], "valueQuantity": {"value": 8.5, "unit": "mmol/L"}}
        new = {**_EVERY_KIND[1], "id": "kinds-new"}
        with make_factory(old).begin() as session:
            save_resources(session, [changed, new], message_id=None, now=T0 + timedelta(days=6))
        found = _answers(old, [("Observation", [("subject", "Patient/kinds"), ("_sort", "_id")])])
        assert found[0][0] == ["kinds-new", "kinds-o"]
        after_save, answers = _rows(old), _answers(old, QUERIES)
        if sqlite:
            assert _numbered(_row_ids(old))

        downgrade(old, "0035")
        assert _form(old) == (False, True)
        assert _rows(old) == after_save  # every value, each resource's rows in their order
        flat = sorted(i for rows in _row_ids(old).values() for i in rows)
        assert len(set(flat)) == len(flat)
        migrate(old)
        assert _rows(old) == after_save
        assert _answers(old, QUERIES) == answers
    finally:
        head.dispose()
        old.dispose()

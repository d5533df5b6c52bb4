"""Migration 0019 on a database that holds data (SQLite, and PostgreSQL in the -m db pass):
a store filled as 0018 stored it (each index row with its system as text, a long one cut
to a key with the whole in ``system_full``) is upgraded; every row keeps its row id and
gets its system's id, and searches by system (``system|code``, ``|code``, ``system|``,
``:not``, quantities, identifiers, chains, ``_has``) answer exactly as on a store written
at head. A save after the upgrade reuses the migrated ids and adds a new system once; the
downgrade gives back the text columns."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import Column, Engine, MetaData, Table, Text, insert, select, text

from adapter.fhir.search_query import parse_search
from adapter.store import make_engine, migrate, save_resources
from adapter.store import session_factory as make_factory
from adapter.store.engine import downgrade
from adapter.store.index_keys import KEY_CHARS, head_key
from adapter.store.models import SearchSystem
from adapter.store.search import find
from tests.api.search_fixtures import LOINC, MRN, T0, resources
from tests.integration.index_0024 import columns_0024, rows_0024
from tests.integration.keyed_rows import keyed_rows, resource_columns_before_0047
from tests.integration.test_migration_0018 import QUERIES as QUERIES_0018
from tests.integration.test_migration_0018 import TYPES_BEFORE_0033
from tests.integration.test_migration_0018 import search_answers as _answers

UCUM = "http://unitsofmeasure.org"
LONG = "urn:oid:1.2.156.1.qs." + "9." * 120  # 261 characters: cut to a key before 0019

QUERIES: list[tuple[str, list[tuple[str, str]]]] = [
    *QUERIES_0018,
    ("Observation", [("code", "718-7")]),
    ("Observation", [("code", f"{LOINC}|")]),
    ("Observation", [("code", "|local-1")]),
    ("Observation", [("code:not", f"{LOINC}|718-7")]),
    ("Observation", [("code", f"{LONG}|long-1")]),
    ("Observation", [("code", f"{LONG}|")]),
    ("Observation", [("value-quantity", f"gt100|{UCUM}|g/L")]),
    ("Observation", [("value-quantity", "gt100||g/L")]),
    ("Patient", [("identifier", f"{MRN}|B-2")]),
    ("Observation", [("subject:Patient.identifier", f"{MRN}|A-1")]),
    ("Patient", [("_has:Observation:patient:code", f"{LOINC}|718-7")]),
]
NOTHING: list[tuple[str, list[tuple[str, str]]]] = [
    ("Observation", [("code", "http://nowhere.example|718-7")]),
    ("Observation", [("code", "|718-7")]),  # 718-7 always has its system
]


def _extra() -> list[dict[str, Any]]:
    pa = {"reference": "Patient/pa"}
    return [
        {
            "resourceType": "Observation",
            "id": "sys1",
            "status": "final",
            "code": {"coding": [{"system": LONG, "code": "long-1"}, {"code": "local-1"}]},
            "subject": pa,
            "effectiveDateTime": "2026-05-02T08:00:00+08:00",
            "valueQuantity": {"value": 140, "unit": "g/L", "system": UCUM, "code": "g/L"},
        }
    ]


# search_index as 0018 had it: the system as text
_OLD = MetaData()
_OLD_INDEX = Table(
    "search_index",
    _OLD,
    *columns_0024("system_id"),
    Column("system", Text()),
    Column("system_full", Text()),
)


_RESOURCE_0018 = Table(
    "resource",
    _OLD,
    *resource_columns_before_0047(TYPES_BEFORE_0033),
)
# the store written at head, read below 0047 (inside ``keyed_rows``)
_HEAD_RESOURCE = Table("resource", MetaData(), *resource_columns_before_0047())


def _copy_as_0018(written: Engine, old: Engine) -> list[dict[str, Any]]:
    with written.connect() as source:
        rows = [dict(r._mapping) for r in source.execute(select(_HEAD_RESOURCE))]
        index = rows_0024(source)
        systems = dict(source.execute(select(SearchSystem.system_id, SearchSystem.system)).all())
    for row in index:
        row["system"], row["system_full"] = head_key(systems.get(row.pop("system_id")))
    with old.begin() as conn:
        conn.execute(insert(_RESOURCE_0018), rows)
        conn.execute(insert(_OLD_INDEX), index)
        if old.dialect.name == "postgresql":  # the keys were given by the other store
            conn.execute(
                text("SELECT setval('resource_key_seq', (SELECT max(resource_key) FROM resource))")
            )
    return index


def _unnumbered(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """The rows without their ids, in a stable order."""
    return sorted(((None, *r[1:]) for r in rows), key=repr)


def _rows_with_systems(engine: Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return sorted(
            conn.execute(
                text(
                    "SELECT si.row_id, si.resource_key, p.param, p.kind, si.code, s.system"
                    " FROM search_index si LEFT JOIN search_system s"
                    " ON s.system_id = si.system_id"
                    " JOIN search_param p ON p.param_id = si.param_id"
                )
            ).all(),
            key=lambda r: r[0],
        )


def test_0019_interns_systems_and_answers_as_a_store_written_at_head(
    database_url: str, blank_database_url: str
) -> None:
    head, old = make_engine(database_url), make_engine(blank_database_url)
    try:
        factory = make_factory(head)
        for n, body in enumerate([*resources(), *_extra()]):
            with factory.begin() as session:
                save_resources(session, [body], message_id=None, now=T0 + timedelta(minutes=n))
        expected = _answers(head, QUERIES)
        assert all(ids or extra for ids, _, extra in expected)  # every query finds something
        assert _answers(head, NOTHING) == [([], 0, [])] * len(NOTHING)
        migrate(old, "0018")
        with keyed_rows(head):
            written = _rows_with_systems(head)
            copied = _copy_as_0018(head, old)
        assert any(r["system_full"] == LONG and len(r["system"]) == KEY_CHARS for r in copied)
        migrate(old)

        with keyed_rows(old):
            upgraded = _rows_with_systems(old)
        if old.dialect.name == "postgresql":
            # the arrays' round trip (keyed_rows) numbers the keyed rows anew (0088), and
            # the copy numbers the rows in (resource, row id) order
            written, upgraded = _unnumbered(written), _unnumbered(upgraded)
        assert upgraded == written  # row ids, values and systems kept
        with old.connect() as conn:
            systems = conn.execute(text("SELECT system, system_hash FROM search_system")).all()
        names = [s for s, _ in systems]
        assert len(names) == len(set(names)) and {LOINC, LONG, UCUM, MRN} <= set(names)
        assert all(len(h) == 64 for _, h in systems)
        assert _answers(old, QUERIES) == expected
        assert _answers(old, NOTHING) == [([], 0, [])] * len(NOTHING)

        # after the upgrade: a known system keeps its id, a new one is added once
        factory = make_factory(old)
        late = {
            "resourceType": "Observation",
            "id": "late",
            "status": "final",
            "code": {
                "coding": [{"system": LOINC, "code": "718-7"}, {"system": "urn:x", "code": "y"}]
            },
        }
        with factory.begin() as session:
            save_resources(session, [late], message_id=None, now=T0 + timedelta(days=1))
        with factory() as session:
            for query, ids in (
                (f"{LOINC}|718-7", {"late"}),
                ("urn:x|y", {"late"}),
                ("urn:x|", {"late"}),
            ):
                parsed = parse_search("Observation", [("code", query)])
                found = {
                    b["id"]
                    for b in find(session, ["Observation"], parsed.criteria, count=50).bodies
                }
                assert ids <= found and (query != "urn:x|" or found == ids)
            count = session.scalar(text("SELECT count(*) FROM search_system"))
            loinc = session.scalar(
                text("SELECT count(*) FROM search_system WHERE system = :s"), {"s": LOINC}
            )
        assert count == len(systems) + 1 and loinc == 1

        downgrade(old, "0018")
        with old.connect() as conn:
            down = conn.execute(
                text("SELECT row_id, system, system_full FROM search_index ORDER BY row_id")
            ).all()
            tables = set(
                conn.execute(
                    text(
                        "SELECT name FROM sqlite_master WHERE type = 'table'"
                        if old.dialect.name == "sqlite"
                        else "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
                    )
                ).scalars()
            )
        assert "search_system" not in tables
        before = {(r["row_id"], r["system"], r["system_full"]) for r in copied}
        if old.dialect.name == "postgresql":  # the keyed rows numbered anew (keyed_rows)
            before = {(None, *r[1:]) for r in before}
            down = [(None, *r[1:]) for r in down]
        assert before <= set(down)
        assert len(down) > len(before)  # and the rows of the resource saved after
    finally:
        head.dispose()
        old.dispose()

"""Migration 0018 on a database that holds data (SQLite, and PostgreSQL in the -m db pass):
a store filled as 0017 stored it (index rows naming their resource by type and id) is
upgraded; every resource gets a distinct key, the index rows keep their row ids and values,
and searches, sorts and includes answer exactly as on a store written at head. A resource
saved after the upgrade gets a new key and its rows; the downgrade gives back the
(type, id) rows."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import Column, Engine, MetaData, String, Table, Text, insert, select, text

from adapter.fhir.search_query import parse_search
from adapter.store import make_engine, migrate, save_resources
from adapter.store import session_factory as make_factory
from adapter.store.engine import downgrade
from adapter.store.index_keys import head_key
from adapter.store.models import Resource, SearchParam, SearchSystem
from adapter.store.search import find
from adapter.store.search_include import included
from adapter.store.search_tokens import index_rows
from adapter.store.types import UTCDateTime
from tests.api.search_fixtures import T0, resources
from tests.integration.index_0024 import columns_0024, rows_0024
from tests.integration.keyed_rows import keyed_rows, resource_columns_before_0047

# (type, query): criteria, chains, _has, :missing, :not, sorts, includes
QUERIES: list[tuple[str, list[tuple[str, str]]]] = [
    ("Observation", [("patient", "Patient/pa")]),
    ("Observation", [("patient", "pa"), ("_sort", "-date")]),
    ("Observation", [("code", "http://loinc.org|718-7")]),
    ("Observation", [("code:not", "718-7")]),
    ("Observation", [("value-quantity:missing", "true")]),
    ("Observation", [("value-quantity:missing", "false"), ("_sort", "value-quantity")]),
    ("Observation", [("date", "ge2026-01-01"), ("_sort", "date")]),
    ("Observation", [("subject:Patient.identifier", "urn:oid:1.2.156.1.qs.mrn|")]),
    ("Observation", [("_sort", "-date")]),
    ("Observation", [("_sort", "code")]),
    ("Observation", [("_include", "Observation:patient")]),
    ("Patient", [("_has:Observation:patient:code", "718-7")]),
    ("Patient", [("name", "张")]),
    ("Patient", [("_revinclude", "Observation:patient"), ("_sort", "-_lastUpdated")]),
    ("Encounter", [("_revinclude", "Observation:encounter")]),
    ("DiagnosticReport", [("_include", "DiagnosticReport:result")]),
]


def search_answers(
    engine: Engine, queries: list[tuple[str, list[tuple[str, str]]]] | None = None
) -> list[tuple[list[str], int | None, list[str]]]:
    """Each query's page of ids, total and included resources (0019's test asks too)."""
    factory = make_factory(engine)
    out = []
    with factory() as session:
        for rtype, params in queries or QUERIES:
            parsed = parse_search(rtype, [*params, ("_count", "50")])
            page = find(
                session, [rtype], parsed.criteria, count=50, sort=parsed.sort, total="accurate"
            )
            extra, _ = included(session, page.bodies, parsed.includes)
            out.append(
                (
                    [b["id"] for b in page.bodies],
                    page.total,
                    sorted(f"{b['resourceType']}/{b['id']}" for b in extra),
                )
            )
    return out


def _save_at_head(engine: Engine) -> None:
    factory = make_factory(engine)
    for n, body in enumerate(resources()):
        with factory.begin() as session:
            save_resources(session, [body], message_id=None, now=T0 + timedelta(minutes=n))


# the two tables as 0017 had them: the index rows name their resource by (type, id)
_OLD = MetaData()
# the resource columns 0033 changed, in the types they had before (decision 0081)
TYPES_BEFORE_0033 = {
    "content_hash": String(64),
    "message_id": String(36),
    "last_updated": UTCDateTime(),
}
_OLD_RESOURCE = Table(
    "resource",
    _OLD,
    *(c for c in resource_columns_before_0047(TYPES_BEFORE_0033) if c.name != "resource_key"),
)
# the store written at head, read below 0047 (inside ``keyed_rows``)
_HEAD_RESOURCE = Table("resource", MetaData(), *resource_columns_before_0047())
_OLD_INDEX = Table(
    "search_index",
    _OLD,
    *columns_0024("resource_key", "system_id"),
    Column("resource_id", String()),
    Column("system", Text()),  # the text until 0019 (decision 0059)
    Column("system_full", Text()),
)


def _copy_as_0017(written: Engine, old: Engine) -> int:
    """The rows the store wrote at head, into ``old`` (at 0017) in 0017's form."""
    with written.connect() as source:
        rows = [dict(r._mapping) for r in source.execute(select(_HEAD_RESOURCE))]
        index = rows_0024(source)
        systems = dict(source.execute(select(SearchSystem.system_id, SearchSystem.system)).all())
    ids = {r["resource_key"]: r["id"] for r in rows}
    for row in rows:
        del row["resource_key"]
    for row in index:
        row["resource_id"] = ids[row.pop("resource_key")]
        row["system"], row["system_full"] = head_key(systems.get(row.pop("system_id")))
    with old.begin() as conn:
        conn.execute(insert(_OLD_RESOURCE), rows)
        conn.execute(insert(_OLD_INDEX), index)
    return len(index)


def test_0018_gives_keys_and_answers_as_a_store_written_at_head(
    database_url: str, blank_database_url: str
) -> None:
    head, old = make_engine(database_url), make_engine(blank_database_url)
    try:
        _save_at_head(head)
        expected = search_answers(head)
        assert all(ids or extra for ids, _, extra in expected)  # every query finds something
        migrate(old, "0017")
        with keyed_rows(head):
            copied = _copy_as_0017(head, old)
        with old.connect() as conn:
            before = conn.execute(
                text("SELECT row_id, resource_type, resource_id, param FROM search_index")
            ).all()
        migrate(old)

        with keyed_rows(old), old.connect() as conn:
            keys = conn.execute(text("SELECT resource_type, id, resource_key FROM resource")).all()
            after = conn.execute(
                text(
                    "SELECT si.row_id, p.resource_type, r.id, p.param FROM search_index si"
                    " JOIN resource r ON r.resource_key = si.resource_key"
                    " JOIN search_param p ON p.param_id = si.param_id"
                )
            ).all()
        assert len({k for _, _, k in keys}) == len(keys) and all(k for _, _, k in keys)
        if old.dialect.name == "postgresql":
            # the arrays' round trip (keyed_rows) numbers the keyed rows anew: their order
            # among their resource's rows is not kept (an array holds no order, 0088)
            before = [(0, *r[1:]) for r in before]
            after = [(0, *r[1:]) for r in after]
        assert sorted(_ranked(after)) == sorted(_ranked(before)) and len(after) == copied
        assert search_answers(old) == expected

        # a new resource after the upgrade: a key no other has, its rows searchable
        factory = make_factory(old)
        with factory.begin() as session:
            save_resources(
                session,
                [{"resourceType": "Patient", "id": "late", "name": [{"family": "迟"}]}],
                message_id=None,
                now=T0 + timedelta(days=1),
            )
        with factory() as session:
            parsed = parse_search("Patient", [("name", "迟")])
            page = find(session, ["Patient"], parsed.criteria, count=10)
            assert [b["id"] for b in page.bodies] == ["late"]
            late = session.scalar(select(Resource.resource_key).where(Resource.id == "late"))
        assert late is not None and late > max(k for _, _, k in keys)

        downgrade(old, "0017")
        with old.connect() as conn:
            down = conn.execute(
                text("SELECT row_id, resource_type, resource_id, param FROM search_index")
            ).all()
        if old.dialect.name == "postgresql":
            down = [(0, *r[1:]) for r in down]
        assert set(_ranked(before)) <= set(_ranked(down))
        assert {row[2] for row in set(_ranked(down)) - set(_ranked(before))} == {"late"}
    finally:
        head.dispose()
        old.dispose()


def _ranked(rows: Sequence[Any]) -> list[tuple[Any, ...]]:
    """(row id, type, id, param) rows with each row id as its rank among its resource's:
    what every form keeps (0036 numbers each resource's rows on SQLite: decision 0085)."""
    ids: dict[tuple[Any, Any], list[Any]] = {}
    for row_id, rtype, rid, _ in rows:
        ids.setdefault((rtype, rid), []).append(row_id)
    ranks = {key: {v: n for n, v in enumerate(sorted(found))} for key, found in ids.items()}
    return [(ranks[(t, i)][row_id], t, i, p) for row_id, t, i, p in rows]


def test_keys_are_distinct_across_a_batch_and_single_saves(database_url: str) -> None:
    """Keys given in one transaction and across transactions never repeat; a resource that
    changes keeps its key (its old index rows replaced, not added to)."""
    engine = make_engine(database_url)
    try:
        factory, count = make_factory(engine), 3
        bodies: list[dict[str, Any]] = [
            {"resourceType": "Patient", "id": f"k{n}", "gender": "male"} for n in range(count)
        ]
        with factory.begin() as session:
            save_resources(session, bodies, message_id=None, now=T0)
        with factory.begin() as session:
            save_resources(
                session,
                [
                    {"resourceType": "Patient", "id": "k0", "gender": "female"},
                    {"resourceType": "Patient", "id": "k9", "gender": "other"},
                ],
                message_id=None,
                now=T0 + timedelta(minutes=1),
            )
        with factory() as session:
            keys = dict(session.execute(select(Resource.id, Resource.resource_key)).all())
            si = index_rows()  # PostgreSQL's arrays as rows too (decision 0103)
            genders = session.execute(
                select(Resource.id, si.c.code)
                .select_from(si)
                .join(Resource, Resource.resource_key == si.c.resource_key)
                .join(SearchParam, SearchParam.param_id == si.c.param_id)
                .where(SearchParam.param == "gender")
            ).all()
        assert len(set(keys.values())) == len(keys) == count + 1
        assert sorted(genders) == [
            ("k0", "female"),
            ("k1", "male"),
            ("k2", "male"),
            ("k9", "other"),
        ]
    finally:
        engine.dispose()

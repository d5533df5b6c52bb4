"""Migration 0038 (decision 0089) on a database holding messages and resources (SQLite,
and PostgreSQL in the -m db pass).

PostgreSQL: the three foreign keys to inbound_message are DEFERRABLE INITIALLY IMMEDIATE at
0038 and NOT DEFERRABLE at 0036; the resource's last-change index is (resource_type,
last_updated) at 0038 and (resource_type, last_updated, id) at 0036. Every search that
reads that index answers the same at each step, and a bulk batch stores after the upgrade.
SQLite: the schema is the same at 0036 and 0038.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, inspect, text

from adapter.fhir.search_query import parse_search
from adapter.store import make_engine, migrate, save_resources
from adapter.store import session_factory as make_factory
from adapter.store.engine import downgrade
from adapter.store.history import HistoryQuery, read_history_page
from adapter.store.search import find
from tests.integration.referral_support import pipeline_for
from tests.integration.test_bulk_ingest import _fixtures, _routed
from tests.integration.test_message_row_once import T0

_KEYS = (
    "fk_resource_message_id_inbound_message",
    "fk_resource_version_message_id_inbound_message",
    "fk_outbox_message_id_inbound_message",
)
# PostgreSQL at 0038: the outbox's 8-byte columns first, then 4, 2, variable-length
_ORDER_0038 = [
    "id", "resource_key", "order_key", "next_attempt_at", "created_at", "claimed_until",
    "first_attempt_at", "last_attempt_at", "delivered_at", "sequence", "destination_id",
    "version_id", "attempts", "sent_version_id", "state", "message_id", "reason",
    "last_error", "claimed_by", "last_status", "person_id", "care_facility",
]  # fmt: skip
SEARCHES = [
    ("Observation", [("_sort", "-_lastUpdated")]),
    ("Observation", [("_sort", "_lastUpdated")]),
    ("Observation", []),
    ("Observation", [("_lastUpdated", "ge2026-12-05T03:00:02Z")]),
    ("Patient", [("_sort", "-_lastUpdated"), ("_count", "3")]),
]


def _save(engine: Engine) -> None:
    """Resources of three moments, several sharing an instant (the order's id term)."""
    with make_factory(engine).begin() as session:
        for n in range(3):
            save_resources(
                session,
                [
                    {"resourceType": "Patient", "id": f"p{n}", "gender": "female"},
                    *(
                        {
                            "resourceType": "Observation",
                            "id": f"o{n}-{k}",
                            "status": "final",
                            "code": {"text": f"t{k}"},
                            "subject": {"reference": f"Patient/p{n}"},
                        }
                        for k in (3, 1, 2)
                    ),
                ],
                message_id=None,
                now=T0 + timedelta(seconds=n),
            )


def _answers(engine: Engine) -> list[Any]:
    out: list[Any] = []
    with make_factory(engine)() as session:
        for rtype, params in SEARCHES:
            parsed = parse_search(rtype, [*params, ("_count", "50")])
            page = find(session, [rtype], parsed.criteria, count=50, sort=parsed.sort)
            out.append([b["id"] for b in page.bodies])
        _, rows = read_history_page(
            session, HistoryQuery(resource_type="Observation", since=T0, count=50)
        )
        out.append([(r.id, r.version_id) for r in rows])
    return out


def _postgresql_form(engine: Engine) -> tuple[dict[str, tuple[bool, bool]], set[tuple[str, ...]]]:
    with engine.connect() as conn:
        keys = {
            name: (deferrable, deferred)
            for name, deferrable, deferred in conn.execute(
                text(
                    "SELECT conname, condeferrable, condeferred FROM pg_constraint"
                    " WHERE conname = ANY(:names) AND connamespace = current_schema()::regnamespace"
                ),
                {"names": list(_KEYS)},
            )
        }
    indexes = {tuple(ix["column_names"]) for ix in inspect(engine).get_indexes("resource")}
    return keys, indexes


def _outbox(engine: Engine) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Every outbox row (every column, by name) in id order, and the delivery attempts."""
    names = ", ".join(_OUTBOX_COLUMNS)
    with engine.connect() as conn:
        rows = list(conn.execute(text(f"SELECT {names} FROM outbox ORDER BY id")))
        attempts = list(conn.execute(text("SELECT id, outbox_id, outcome FROM delivery_attempt")))
    return [tuple(r) for r in rows], [tuple(a) for a in attempts]


def _column_order(engine: Engine) -> list[str]:
    return [c["name"] for c in inspect(engine).get_columns("outbox")]


_OUTBOX_COLUMNS = (
    "id",
    "version_id",
    "state",
    "attempts",
    "next_attempt_at",
    "created_at",
    "last_error",
    "message_id",
    "order_key",
    "claimed_by",
    "claimed_until",
    "first_attempt_at",
    "last_attempt_at",
    "delivered_at",
    "last_status",
    "sent_version_id",
    "reason",
    "person_id",
    "care_facility",
    "sequence",
    "destination_id",
    "resource_key",
)  # fmt: skip (0036's order)


# what migration 0047 changes (resource.facility_id to a key of facility_name)
_AFTER_0045 = {"resource", "facility_name", "sqlite_autoindex_facility_name_1"}


def _sqlite_schema(engine: Engine) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                text(
                    "SELECT name, sql FROM sqlite_master"
                    " WHERE name != 'alembic_version' ORDER BY name"
                )
            )
        )


def test_migration_0038_both_ways(blank_database_url: str, tmp_path: Path) -> None:
    engine = make_engine(blank_database_url)
    try:
        migrate(engine)
        _save(engine)
        pipeline = pipeline_for(_routed(tmp_path), make_factory(engine))
        items = _fixtures()
        results = list(pipeline.ingest_many(items[:6], batch=3))  # outbox rows, routed
        assert all(r.accepted for r in results)
        with engine.begin() as conn:  # an attempt, which the outbox's copy must keep
            conn.execute(
                text(
                    "INSERT INTO delivery_attempt (outbox_id, destination, attempted_at,"
                    " outcome, duration_ms) SELECT min(id), 'x', :t, 'retry', 1 FROM outbox"
                ),
                {"t": T0},
            )
        outbox = _outbox(engine)
        assert len(outbox[0]) > 10 and len(outbox[1]) == 1
        answers = _answers(engine)
        ours = [[i for i in a if isinstance(i, str) and i.startswith("o")] for a in answers[:2]]
        assert ours[0][:3] == ["o2-1", "o2-2", "o2-3"]  # newest first, ids ascending
        assert ours[1][:3] == ["o0-1", "o0-2", "o0-3"]
        postgresql = engine.dialect.name == "postgresql"
        if postgresql:
            keys, indexes = _postgresql_form(engine)
            assert keys == dict.fromkeys(_KEYS, (True, False))
            assert ("resource_type", "last_updated") in indexes
            assert ("resource_type", "last_updated", "id") not in indexes
            assert _column_order(engine) == _ORDER_0038
        else:
            at_head = [e for e in _sqlite_schema(engine) if e[0] not in _AFTER_0045]

        downgrade(engine, "0036")
        assert _answers(engine) == answers
        if postgresql:
            keys, indexes = _postgresql_form(engine)
            assert keys == dict.fromkeys(_KEYS, (False, False))
            assert ("resource_type", "last_updated", "id") in indexes
            assert ("resource_type", "last_updated") not in indexes
            assert _column_order(engine) == list(_OUTBOX_COLUMNS)
        else:
            # nothing changes on SQLite but the index 0045 drops (decision 0115), what 0047
            # changes (decision 0118: its own test, test_migration_0047.py) and the column
            # 0048 adds (decision 0119)
            back = [
                e
                for e in _sqlite_schema(engine)
                if e[0] != "ix_identity_history_person_id" and e[0] not in _AFTER_0045
            ]
            assert back == [(n, sql and sql.replace(" links BLOB,", "")) for n, sql in at_head]
        assert _outbox(engine) == outbox

        migrate(engine)
        assert _answers(engine) == answers
        assert _outbox(engine) == outbox
        if postgresql:
            assert _postgresql_form(engine)[0] == dict.fromkeys(_KEYS, (True, False))
            assert _column_order(engine) == _ORDER_0038
        # a bulk batch after the upgrade: stored, its outbox rows numbered after the others
        results = list(pipeline.ingest_many(items[6:12], batch=3))
        assert all(r.accepted and not r.duplicate for r in results)
        rows = _outbox(engine)[0]
        assert rows[: len(outbox[0])] == outbox[0] and len(rows) > len(outbox[0])
        with engine.begin() as conn:  # the attempts' foreign key cascades as before
            conn.execute(text("DELETE FROM outbox WHERE id = :i"), {"i": outbox[0][0][0]})
            assert conn.execute(text("SELECT count(*) FROM delivery_attempt")).scalar_one() == 0
    finally:
        engine.dispose()

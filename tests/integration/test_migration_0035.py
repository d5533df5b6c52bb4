"""Migration 0035 (decision 0084) on a database whose outbox holds rows in every state,
with attempts, for two destinations, about patients, about a patient the store never
received and about no patient (SQLite, and PostgreSQL in the -m db pass): every stored
value is the same after the downgrade (the type, id and order key's text back) and after
the upgrade again (the same resource keys and hashes as the code wrote: PostgreSQL's SQL
hash is Python's); every read of the outbox answers the same at each step. A row whose
resource the store does not have stops the upgrade and changes nothing."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, inspect, text

from adapter.store import enqueue_many, make_engine, migrate, save_resources
from adapter.store import session_factory as make_factory
from adapter.store.engine import downgrade
from adapter.store.outbox import claim, settle_coalesced_many
from adapter.store.outbox.enqueue import order_hash
from adapter.store.outbox.rows import Settlement
from tests.integration.outbox_forms import as_texts
from tests.integration.test_migration_0031 import MESSAGE, T0, _claimable, _fill, _reads


def _more(engine: Engine) -> None:
    """Rows about a patient the store has no Patient for, and a resource with two queued
    versions (coalescing finds the older by resource key and order key)."""
    factory = make_factory(engine)
    with factory.begin() as session:
        for version in (1, 2):
            saved = save_resources(
                session,
                [
                    {
                        "resourceType": "Observation",
                        "id": "ghost-1",
                        "status": "final",
                        "code": {"text": f"v{version}"},
                        "subject": {"reference": "Patient/never-received"},
                    }
                ],
                message_id=MESSAGE,
                now=T0 + timedelta(seconds=version),
            )
            enqueue_many(
                session,
                [
                    {
                        "destination": "d3",
                        "resource_type": s.resource_type,
                        "resource_id": s.id,
                        "version_id": s.version_id,
                        "patient_key": s.patient_key,
                        "message_id": MESSAGE,
                    }
                    for s in saved
                ],
                now=T0,
            )


def _columns(engine: Engine) -> set[str]:
    return {c["name"] for c in inspect(engine).get_columns("outbox")}


def _raw(engine: Engine) -> tuple[list[dict[str, Any]], list[tuple[Any, ...]]]:
    """The outbox rows as stored (every column) and the attempts."""
    with engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(text("SELECT * FROM outbox ORDER BY id")).mappings()]
        attempts = [
            tuple(r)
            for r in conn.execute(
                text("SELECT id, outbox_id, outcome, status FROM delivery_attempt ORDER BY id")
            )
        ]
    return rows, attempts


def _as_texts(engine: Engine, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [as_texts(conn, row) for row in rows]


def _coalesced(engine: Engine) -> int:
    """Delivering ghost-1's current version to d3 settles its older row too (rolled back)."""
    at = T0 + timedelta(seconds=10)
    with make_factory(engine)() as session:
        taken = claim(session, destination="d3", worker="w", now=at, lease_seconds=5, limit=1)
        assert [(r.resource_id, r.version_id) for r in taken] == [("ghost-1", 1)]
        current = Settlement(taken[0], "delivered", at, status="200", sent_version=2)
        marked = settle_coalesced_many(session, [current], worker="w")
        session.rollback()
        return marked


def test_0035_keys_the_outbox_rows_and_downgrades(blank_database_url: str) -> None:
    engine = make_engine(blank_database_url)
    try:
        migrate(engine)
        _fill(engine)
        _more(engine)
        reads = _reads(engine)
        claimable = _claimable(engine)
        stored, attempts = _raw(engine)
        assert len(stored) == 22 and len(attempts) == 3
        ghost = [r for r in reads["rows"][1] if r["resource_id"] == "ghost-1"]
        assert {(r["patient_key"], r["order_key"]) for r in ghost} == {
            ("Patient/never-received", order_hash("Patient/never-received"))
        }
        assert _coalesced(engine) == 1
        texts = _as_texts(engine, stored)
        # the texts as 0034 stored them: the patient's key, else the resource's own
        assert {r["order_key"] for r in texts} == {
            "Patient/p0",
            "Patient/p1",
            "Patient/p2",
            "Organization/org1",
            "Patient/never-received",
        }

        downgrade(engine, "0034")
        assert {"resource_type", "resource_id"} <= _columns(engine)
        assert "resource_key" not in _columns(engine)
        assert _raw(engine) == (texts, attempts)  # every value, the attempts kept

        migrate(engine)
        assert not {"resource_type", "resource_id"} & _columns(engine)
        assert _raw(engine) == (stored, attempts)  # the same keys and hashes as the code's
        assert _reads(engine) == reads
        assert _claimable(engine) == claimable
        assert _coalesced(engine) == 1
    finally:
        engine.dispose()


def test_0035_stops_on_a_row_whose_resource_is_not_stored(blank_database_url: str) -> None:
    engine = make_engine(blank_database_url)
    try:
        migrate(engine)
        _fill(engine)
        downgrade(engine, "0034")
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO outbox (destination_id, resource_type, resource_id, version_id,"
                    " order_key, state, attempts, next_attempt_at, created_at)"
                    " SELECT destination_id, 'Observation', 'gone', 1, 'Observation/gone',"
                    " state, 0, next_attempt_at, created_at FROM outbox WHERE id = 1"
                )
            )
        before = _raw(engine)
        with pytest.raises(RuntimeError, match="1 outbox rows name a resource"):
            migrate(engine)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0034"
        assert _raw(engine) == before
    finally:
        engine.dispose()

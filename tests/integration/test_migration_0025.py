"""Migration 0025 (decision 0070) on a database that holds outbox rows (SQLite, and
PostgreSQL in the -m db pass): the upgrade replaces three indexes by one, the rows and the
claim's answer stay, and the downgrade puts the three back."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import Engine, inspect, text

from adapter.store import make_engine, migrate
from adapter.store import session_factory as make_factory
from adapter.store.engine import downgrade
from adapter.store.outbox import claim_queues, enqueue_many, settle_coalesced_many
from adapter.store.outbox.rows import Settlement
from tests.integration.delivery_support import DEST, T0
from tests.integration.outbox_forms import order_texts

OLD = {
    ("destination", "state", "next_attempt_at"),
    ("destination", "order_key", "id"),
    ("resource_type", "resource_id"),
}
NEW = ("destination", "state", "order_key")
HEAD = ("destination_id", "state", "order_key")  # the destination by its id (0031)


def _indexes(engine: Engine) -> set[tuple[str, ...]]:
    return {tuple(ix["column_names"]) for ix in inspect(engine).get_indexes("outbox")}


def _rows(engine: Engine) -> list[tuple]:
    """(id, destination, order key, state, version) as stored at 0024 or at head (where
    the destination and the state are small integers: migration 0031)."""
    head = "outbox_destination" in inspect(engine).get_table_names()
    states = {1: "pending", 2: "in-flight", 3: "delivered", 4: "dead"}
    query = (
        "SELECT o.id, d.destination, o.order_key, o.state, o.version_id FROM outbox o"
        " JOIN outbox_destination d ON d.destination_id = o.destination_id ORDER BY o.id"
        if head
        else "SELECT id, destination, order_key, state, version_id FROM outbox ORDER BY id"
    )
    texts = order_texts(f"Patient/p{p}" for p in range(4))  # 0035 hashes them
    with engine.connect() as conn:
        return [
            (i, d, texts.get(k, k), states[s] if head else s, v)
            for i, d, k, s, v in conn.execute(text(query))
        ]


def _queue(engine: Engine) -> None:
    """The rows as the code of 0024 wrote them (pending, due a minute before T0)."""
    due = T0 - timedelta(minutes=1)
    sqlite = engine.dialect.name == "sqlite"
    moment: object = due.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
    rows = [
        {
            "destination": destination,
            "id": f"o{p}-{n}",
            "patient": f"Patient/p{p}",
            "at": moment if sqlite else due,
        }
        for destination in (DEST, "other")
        for n in range(3)
        for p in range(4)
    ]
    # the resources, as 0024 stored them (an outbox row names a stored one: 0035 reads
    # its resource_key)
    resources = [
        {
            "id": f"o{p}-{n}",
            "key": 1 + p * 3 + n,
            "hash": f"{1 + p * 3 + n:064x}",
            "patient": f"Patient/p{p}",
            "at": moment if sqlite else due,
            "body": json.dumps(
                {
                    "resourceType": "Observation",
                    "id": f"o{p}-{n}",
                    "subject": {"reference": f"Patient/p{p}"},
                }
            ),
        }
        for n in range(3)
        for p in range(4)
    ]
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO resource (resource_type, id, resource_key, version_id,"
                " last_updated, deleted, content_hash, body, patient_key)"
                " VALUES ('Observation', :id, :key, 1, :at, false, :hash, :body, :patient)"
            ),
            resources,
        )
        conn.execute(
            text(
                "INSERT INTO outbox (destination, resource_type, resource_id, version_id,"
                " patient_key, order_key, state, attempts, next_attempt_at, created_at)"
                " VALUES (:destination, 'Observation', :id, 1, :patient, :patient, 'pending',"
                " 0, :at, :at)"
            ),
            rows,
        )


def test_0025_replaces_the_outbox_indexes_with_rows_present(blank_database_url: str) -> None:
    engine = make_engine(blank_database_url)
    try:
        migrate(engine, "0024")
        _queue(engine)
        assert _indexes(engine) >= OLD and NEW not in _indexes(engine)
        before = _rows(engine)

        migrate(engine, "0025")
        assert not OLD & _indexes(engine) and NEW in _indexes(engine)
        migrate(engine)  # the outbox code reads the schema at head
        assert not OLD & _indexes(engine) and HEAD in _indexes(engine)
        assert ("state", "next_attempt_at") in _indexes(engine)
        assert ("message_id",) in _indexes(engine)
        assert _rows(engine) == before
        factory = make_factory(engine)
        with factory.begin() as session:
            taken = claim_queues(
                session, destination=DEST, worker="w", now=T0, lease_seconds=60, limit=6
            )
            # patients 0 and 1 whole (3 rows each: half of 6), in id order
            assert [r.id for r in taken] == sorted(r.id for r in taken)
            assert {(r.patient_key, r.resource_id) for r in taken} == {
                (f"Patient/p{p}", f"o{p}-{n}") for p in (0, 1) for n in range(3)
            }
            # coalescing finds a resource's pending rows by its order key
            enqueue_many(
                session,
                [
                    {
                        "destination": DEST,
                        "resource_type": "Observation",
                        "resource_id": "o0-0",
                        "version_id": 2,
                        "patient_key": "Patient/p0",
                    }
                ],
                now=T0,
            )
            sent = Settlement(taken[0], "delivered", T0, status="200", sent_version=2)
            assert settle_coalesced_many(session, [sent], worker="w") == 1
        after = _rows(engine)

        downgrade(engine, "0024")
        assert _indexes(engine) >= OLD and NEW not in _indexes(engine)
        assert _rows(engine) == after
    finally:
        engine.dispose()

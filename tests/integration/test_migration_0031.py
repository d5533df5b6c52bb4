"""Migration 0031 (decision 0079) on a database whose outbox holds rows in every state
(SQLite, and PostgreSQL in the -m db pass): every read of the outbox (the API's listing,
one delivery, the claim, a retry's due time, the queue figures, the acknowledgements, the
prune's count) answers the same before the upgrade, after it, after the downgrade and
after the upgrade again; SQLite's instants are integers at 0031 and text at 0030."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, inspect, text

from adapter.store import make_engine, migrate, save_resources
from adapter.store import session_factory as make_factory
from adapter.store.engine import downgrade
from adapter.store.models import InboundMessage
from adapter.store.outbox import (
    Settlement,
    claim,
    count_prunable,
    enqueue_many,
    find_delivery,
    list_deliveries,
    next_due,
    queue_figures,
    replay_many,
    settle_many,
)
from adapter.store.outbox.acks import acknowledgements
from adapter.store.types import uuid_text
from tests.integration.outbox_forms import as_texts

T0 = datetime(2026, 12, 5, 3, 0, 0, 123456, tzinfo=UTC)
INSTANTS = (
    "next_attempt_at",
    "created_at",
    "claimed_until",
    "first_attempt_at",
    "last_attempt_at",
    "delivered_at",
)
MESSAGE = "00000000-0000-4000-8000-000000000001"


def _fill(engine: Engine) -> None:
    """Rows for two destinations: delivered, retrying, dead, in flight, pending, queued
    behind a retry, and a resource about no patient."""
    factory = make_factory(engine)
    with factory.begin() as session:
        session.add(
            InboundMessage(
                id=MESSAGE,
                source_system="s",
                received_at=T0,
                sha256="0" * 64,
                raw=b"x",
                size=1,
                status="processed",
            )
        )
        session.flush()
        people = [{"resourceType": "Patient", "id": f"p{n}", "gender": "female"} for n in range(3)]
        results = [
            {
                "resourceType": "Observation",
                "id": f"o{n}",
                "status": "final",
                "code": {"text": "t"},
                "subject": {"reference": f"Patient/p{n % 3}"},
            }
            for n in range(6)
        ]
        orgs = [{"resourceType": "Organization", "id": "org1", "name": "x"}]
        saved = save_resources(session, people + results + orgs, message_id=MESSAGE, now=T0)
        enqueue_many(
            session,
            [
                {
                    "destination": destination,
                    "resource_type": s.resource_type,
                    "resource_id": s.id,
                    "version_id": s.version_id,
                    "patient_key": s.patient_key,
                    "message_id": MESSAGE,
                    "reason": "route",
                }
                for destination in ("d1", "d2")
                for s in saved
            ],
            now=T0,
        )
    at = T0 + timedelta(seconds=5)
    with factory.begin() as session:
        taken = claim(session, destination="d1", worker="w1", now=at, lease_seconds=30, limit=3)
        assert len(taken) == 3
        settle_many(
            session,
            [
                Settlement(taken[0], "delivered", at, status="200", sent_version=1),
                Settlement(
                    taken[1],
                    "retry",
                    at,
                    status="503",
                    error="busy",
                    next_attempt_at=at + timedelta(minutes=5),
                ),
                Settlement(taken[2], "dead", at, status="400", error="refused"),
            ],
            worker="w1",
        )
    with factory.begin() as session:  # one row stays in flight
        assert len(claim(session, destination="d2", worker="w2", now=at, lease_seconds=60, limit=1))


def _reads(engine: Engine) -> dict[str, Any]:
    at = T0 + timedelta(seconds=10)
    with make_factory(engine)() as session:
        total, rows = list_deliveries(session, limit=100)
        dead = list_deliveries(session, state="dead", destination="d1")
        one = find_delivery(session, rows[-1].id)
        return {
            "rows": (total, [asdict(r) for r in rows]),
            "dead": (dead[0], [r.id for r in dead[1]]),
            "one": asdict(one) if one else None,
            "next_due": {d: next_due(session, destination=d, now=at) for d in ("d1", "d2")},
            "figures": sorted(
                (f.destination, str(f.state), f.count, f.oldest_created_at)
                for f in queue_figures(session)
            ),
            "acks": acknowledgements(session, [MESSAGE]),
            "prunable": count_prunable(session, T0 + timedelta(days=1)),
        }


def _claimable(engine: Engine) -> list[tuple[str, str]]:
    """What a claim would take now (rolled back)."""
    at = T0 + timedelta(seconds=10)
    with make_factory(engine)() as session:
        taken = claim(session, destination="d1", worker="w9", now=at, lease_seconds=5, limit=50)
        session.rollback()
        return [(r.resource_type, r.resource_id) for r in taken]


def _stored_types(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return {
            kind
            for column in INSTANTS
            for (kind,) in conn.execute(
                text(f"SELECT DISTINCT typeof({column}) FROM outbox WHERE {column} IS NOT NULL")
            )
        }


def _instant(value: Any) -> Any:
    """A stored instant as an aware datetime, whatever its form (text, integer, timestamptz)."""
    if isinstance(value, int):
        return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=value)
    if isinstance(value, str):
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    return value.astimezone(UTC) if value is not None else None


def _stored(engine: Engine) -> dict[str, Any]:
    """The outbox rows as stored, with names and instants read the same at 0030 and 0031,
    and the attempts."""
    new = "outbox_destination" in inspect(engine).get_table_names()
    states = {1: "pending", 2: "in-flight", 3: "delivered", 4: "dead"}
    with engine.connect() as conn:
        names = (
            dict(
                conn.execute(
                    text("SELECT destination_id, destination FROM outbox_destination")
                ).all()
            )
            if new
            else {}
        )
        rows = []
        for row in conn.execute(text("SELECT * FROM outbox ORDER BY id")).mappings():
            values = as_texts(conn, dict(row))  # 0035's keys as the texts (decision 0084)
            if new:
                values["destination"] = names[values.pop("destination_id")]
                values["state"] = states[values["state"]]
            for column in INSTANTS:
                values[column] = _instant(values[column])
            # migration 0033 (later in the chain) stores the message id as 16 bytes
            values["message_id"] = uuid_text(values["message_id"])
            rows.append(values)
        attempts = [
            tuple(r)
            for r in conn.execute(
                text("SELECT id, outbox_id, outcome, status FROM delivery_attempt ORDER BY id")
            )
        ]
    return {"rows": rows, "attempts": attempts}


def _created_at_text(engine: Engine) -> set[Any]:
    with engine.connect() as conn:
        return set(conn.execute(text("SELECT DISTINCT created_at FROM outbox")).scalars())


def test_0031_reads_the_same_both_ways(blank_database_url: str) -> None:
    engine = make_engine(blank_database_url)
    sqlite = engine.dialect.name == "sqlite"
    try:
        migrate(engine)
        _fill(engine)
        before = _reads(engine)
        stored = _stored(engine)
        claimable = _claimable(engine)
        assert before["rows"][0] == 20
        assert before["dead"][0] == 1
        assert before["next_due"]["d1"] == T0 + timedelta(seconds=5, minutes=5)
        assert before["next_due"]["d2"] == T0 + timedelta(seconds=65)  # the lease's end
        assert before["acks"] == {MESSAGE: {"d1": "dead", "d2": "pending"}}
        # d1's heads: p0's next row, none of p1 (its head retries later), p2's next row
        # (its dead head blocks nothing), the organization
        assert claimable == [("Observation", "o0"), ("Observation", "o2"), ("Organization", "org1")]
        assert len(stored["attempts"]) == 3
        assert {r["destination"] for r in stored["rows"]} == {"d1", "d2"}
        if sqlite:
            assert _stored_types(engine) == {"integer"}

        downgrade(engine, "0030")
        assert _stored(engine) == stored  # the attempts too (SQLite copies the table)
        if sqlite:  # as 0030's UTCDateTime wrote them
            assert _stored_types(engine) == {"text"}
            assert _created_at_text(engine) == {"2026-12-05 03:00:00.123456"}

        migrate(engine)
        assert _stored(engine) == stored
        assert _reads(engine) == before
        assert _claimable(engine) == claimable
        if sqlite:
            assert _stored_types(engine) == {"integer"}
    finally:
        engine.dispose()


def test_0031_a_delivery_cycle_writes_integer_instants_on_sqlite(database_url: str) -> None:
    """Every write of an instant (enqueue, claim, retry, settle, replay) binds it as the
    column's type: none is left as text (text compares above every integer on SQLite)."""
    engine = make_engine(database_url)
    try:
        _fill(engine)
        with make_factory(engine).begin() as session:
            assert replay_many(session, destination="d1", now=T0 + timedelta(minutes=1)) == 1
        with make_factory(engine)() as session:
            assert next_due(session, destination="d1", now=T0) == T0 + timedelta(minutes=1)
        if engine.dialect.name == "sqlite":
            assert _stored_types(engine) == {"integer"}
    finally:
        engine.dispose()

"""Benchmark: which index each outbox query uses, on SQLite and PostgreSQL (decision 0070).

    .venv/bin/python bench/outbox_plans.py [--patients 500] [--pg URL | --no-pg] [--verbose]

A synthetic outbox of two destinations: per destination ``--patients`` patients, each with
``--history`` delivered rows, then one dead row for one patient in ten, then ``--queued``
pending rows (the first in flight for one patient in four), and a few rows about no
patient. ``ANALYZE``d. Then every query the adapter runs on the outbox is made by the
adapter's own function (its statements captured from the cursor, inside a transaction that
is rolled back) and each statement is EXPLAINed (SQLite: ``EXPLAIN QUERY PLAN``,
PostgreSQL: ``EXPLAIN``): printed is the list of the outbox's indexes the plan names, or
``scan`` for a full read of the table. ``--verbose`` prints the plans."""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_delivery import Database, postgres_database, sqlite_database
from sqlalchemy import Engine, event, insert, text
from sqlalchemy.orm import Session

from adapter.store import make_engine, migrate, outbox
from adapter.store import session_factory as make_factory
from adapter.store.models import InboundMessage, Outbox, Resource
from adapter.store.outbox.acks import acknowledgements, requeue_dead
from adapter.store.outbox.enqueue import order_hash
from adapter.store.outbox.names import destination_ids
from adapter.store.outbox.rows import OutboxRow, Settlement

NOW = datetime(2026, 12, 5, 8, 0, tzinfo=UTC)
DESTINATIONS = ("county-emr", "province-platform")


def rows(patients: int, history: int, queued: int, ids: dict[str, int]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    lease = NOW + timedelta(minutes=1)
    for destination in DESTINATIONS:
        for n in range(history + 1 + queued):
            for p in range(patients):
                key = f"Patient/p{p}"
                if n < history:
                    state, at = "delivered", NOW - timedelta(days=2, minutes=-n)
                elif n == history:
                    if p % 10:
                        continue
                    state, at = "dead", NOW - timedelta(days=1)
                else:
                    state, at = "pending", NOW - timedelta(minutes=5)
                    if n == history + 1 and p % 4 == 0:
                        state = "in-flight"
                out.append(
                    {
                        "destination_id": ids[destination],  # decision 0079
                        # the resource's key and the hashed patient key (decision 0084)
                        "resource_key": resource_key(p, n),
                        "version_id": 1,
                        "order_key": order_hash(key),
                        "message_id": f"m{p}",
                        "state": state,
                        "attempts": 1 if state != "pending" else 0,
                        "next_attempt_at": at,
                        "created_at": at,
                        "delivered_at": at if state == "delivered" else None,
                        "claimed_by": "w0" if state == "in-flight" else None,
                        "claimed_until": lease if state == "in-flight" else None,
                    }
                )
        for n in range(20):  # rows about no patient: their own order key
            out.append(
                {
                    **out[-1],
                    "resource_key": ORGS + n,
                    "message_id": None,
                    "order_key": order_hash(f"Organization/org{n}"),
                    "state": "pending",
                    "attempts": 0,
                    "delivered_at": None,
                    "claimed_by": None,
                    "claimed_until": None,
                }
            )
    return out


ORGS = 1  # the organizations' keys; an observation's: above them (``resource_key``)


def resource_key(patient: int, n: int) -> int:
    return 1000 + patient * 1000 + n


def resources(patients: int, history: int, queued: int) -> list[dict[str, Any]]:
    """The resource rows the outbox rows name (their type, id and patient are read there)."""
    base = {"version_id": 1, "last_updated": NOW, "deleted": False, "content_hash": "0" * 64}
    out = [
        {
            **base,
            "resource_type": "Observation",
            "id": f"o{p}-{n}",
            "resource_key": resource_key(p, n),
            "body": {"resourceType": "Observation", "id": f"o{p}-{n}"},
            "patient_key": f"Patient/p{p}",
        }
        for p in range(patients)
        for n in range(history + 1 + queued)
    ]
    out += [
        {
            **base,
            "resource_type": "Organization",
            "id": f"org{n}",
            "resource_key": ORGS + n,
            "body": {"resourceType": "Organization", "id": f"org{n}"},
            "patient_key": None,
        }
        for n in range(20)
    ]
    return out


def coalesce(session: Session, delivered: list[Settlement]) -> int:
    return outbox.settle_coalesced_many(session, delivered, worker="w")


def queries() -> list[tuple[str, Callable[[Session], Any]]]:
    d = DESTINATIONS[0]
    claim = {"destination": d, "worker": "w", "now": NOW, "lease_seconds": 60, "limit": 200}
    delivered = Settlement(
        row=OutboxRow.of(
            {c.name: None for c in Outbox.__table__.c}
            | {
                "id": 1,
                "destination": d,
                "resource_key": resource_key(3, 30),
                "order_key": order_hash("Patient/p3"),
                "version_id": 2,
                "state": "in-flight",
                "attempts": 0,
            },
            ("Observation", "o3-30", "Patient/p3"),
        ),
        outcome="delivered",
        attempted_at=NOW,
        status="200",
        sent_version=2,
        duration_ms=1.0,
    )
    return [
        ("claim (heads)", lambda s: outbox.claim(s, **claim)),
        ("claim_queues", lambda s: outbox.claim_queues(s, **claim)),
        ("next_due", lambda s: outbox.next_due(s, destination=d, now=NOW)),
        (
            "settle_coalesced_many",
            lambda s: outbox.settle_coalesced_many(s, [delivered], worker="w"),
        ),
        ("prune_batch", lambda s: outbox.prune_batch(s, NOW - timedelta(days=1), limit=1000)),
        ("count_prunable", lambda s: outbox.count_prunable(s, NOW - timedelta(days=1))),
        ("acknowledgements", lambda s: acknowledgements(s, ["m1", "m2"])),
        ("requeue_dead", lambda s: requeue_dead(s, ["m1"], now=NOW)),
        ("list_deliveries", lambda s: outbox.list_deliveries(s)),
        ("list_deliveries state", lambda s: outbox.list_deliveries(s, state="dead")),
        (
            "list_deliveries dest+state",
            lambda s: outbox.list_deliveries(s, destination=d, state="pending"),
        ),
        ("replay_many dead", lambda s: outbox.replay_many(s, destination=d, now=NOW)),
        ("queue_figures (health, /metrics, console)", outbox.queue_figures),
        ("state_counts (console)", lambda s: outbox.state_counts(s, list(DESTINATIONS))),
        ("release_all", lambda s: outbox.release_all(s, destination=d)),
    ]


def used(plan: str, postgresql: bool) -> str:
    """The outbox's indexes a plan uses ("scan": a walk through the outbox table); a read
    of a destination's name (``outbox_destination``, a few rows: decision 0079) is noted
    apart, as "names"."""
    names = sorted(
        set(re.findall(r"\b(ix_outbox\w+|uq_outbox\w+|pk_outbox\b(?!_)|outbox_pkey)", plan))
    )
    if postgresql:
        scans = re.findall(r"Seq Scan on outbox\b(?!_)", plan)
    else:
        scans = re.findall(r"SCAN (?:outbox|head|active)\b(?! USING)", plan)
        if re.search(r"SEARCH (?:outbox|head|active)\b \w* ?USING INTEGER PRIMARY KEY", plan):
            names.append("pk_outbox")
    found = names + (["scan"] if scans else [])
    if re.search(r"(?:on|SCAN|SEARCH) outbox_destination\b", plan):
        found.append("names")
    return ", ".join(found) or "-"


def explain(engine: Engine, name: str, run: Callable[[Session], Any], verbose: bool) -> None:
    postgresql = engine.dialect.name == "postgresql"
    factory = make_factory(engine)
    with factory() as session:
        connection = session.connection()
        captured: list[tuple[str, Any]] = []

        def capture(_conn, _cursor, statement, parameters, _context, _many):  # type: ignore[no-untyped-def]
            if "outbox" in statement and not statement.startswith("EXPLAIN"):
                captured.append((statement, parameters))

        event.listen(engine, "before_cursor_execute", capture)
        try:
            with session.begin_nested():
                run(session)
        finally:
            event.remove(engine, "before_cursor_execute", capture)
        for statement, parameters in captured:
            if (
                "FROM outbox" not in statement
                and "UPDATE outbox" not in statement
                and ("DELETE FROM outbox" not in statement)
            ):
                continue
            prefix = "EXPLAIN " if postgresql else "EXPLAIN QUERY PLAN "
            cursor = connection.connection.driver_connection.cursor()
            cursor.execute(prefix + statement, parameters)
            found = cursor.fetchall()
            plan = "\n".join(str(r[-1]) for r in found)
            first = " ".join(statement.split())[:70]
            print(f"  {name:42} {used(plan, postgresql):60} {first}")
            if verbose:
                print("    " + plan.replace("\n", "\n    "))
        session.rollback()


def run(database: Database, args: argparse.Namespace) -> None:
    engine = make_engine(database.url)
    try:
        migrate(engine)
        with make_factory(engine).begin() as session:
            ids = destination_ids(session, DESTINATIONS)
        made = rows(args.patients, args.history, args.queued, ids)
        messages = [
            {
                "id": f"m{p}",
                "source_system": "lab",
                "received_at": NOW,
                "sha256": f"{p:064d}",
                "raw": b"MSH",
                "size": 3,
                "status": "processed",
                "issues": [],
                "resources": [],
                "attempts": 1,
            }
            for p in range(args.patients)
        ]
        with engine.begin() as conn:
            conn.execute(insert(InboundMessage.__table__), messages)
            named = resources(args.patients, args.history, args.queued)
            for start in range(0, len(named), 5000):
                conn.execute(insert(Resource.__table__), named[start : start + 5000])
            for start in range(0, len(made), 5000):
                conn.execute(insert(Outbox.__table__), made[start : start + 5000])
            conn.execute(text("ANALYZE" if engine.dialect.name == "sqlite" else "ANALYZE outbox"))
        print(f"{database.label}: {len(made)} outbox rows; indexes used by each statement")
        for name, query in queries():
            explain(engine, name, query, args.verbose)
    finally:
        engine.dispose()
        database.drop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--patients", type=int, default=500)
    parser.add_argument("--history", type=int, default=20)
    parser.add_argument("--queued", type=int, default=8)
    parser.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--no-pg", action="store_true")
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if not args.no_sqlite:
            run(sqlite_database(Path(tmp), "plans.db"), args)
    if not args.no_pg:
        made = postgres_database(args.pg)
        if isinstance(made, str):
            raise SystemExit(made)
        run(made, args)


if __name__ == "__main__":
    main()

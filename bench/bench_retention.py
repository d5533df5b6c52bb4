"""Benchmark: the database per lab message in steady state with and without the outbox
retention (decision 0064), and the prune's own speed, on SQLite and PostgreSQL.

    .venv/bin/python bench/bench_retention.py [--cycles 4] [--messages 300] [--pg URL | --no-pg]
    .venv/bin/python bench/bench_retention.py --large 200000      # the prune's speed alone

Input as ``bench_ingest.py --unique-patients --spread-births`` (every ORU fixture made
unique, a new patient per copy), the example consortium with its destinations enabled (the
routes write outbox rows as in production). One cycle is a night: ingest ``--messages``
messages in bulk, deliver every outbox row through the real DeliveryWorker to an
in-process sink that accepts everything at once (the network is not what is measured:
the attempt rows, the outbox states and the delivery audit records are), then

  keep    nothing is deleted (the engine before decision 0064)
  prune   delivered rows and their attempts are pruned (retention 0: every delivered row)
          (the next cycle reuses the freed pages)

On PostgreSQL every cycle ends with VACUUM ANALYZE in both rows (what autovacuum does on a
server: the delivery's updates of the outbox rows leave dead versions behind either way).
Each row is its own fresh database. The figure is the growth per message from the end of
the first cycle to the end of the last, when the earlier cycles' freed pages are there to
be reused (steady state). SQLite: used pages (``dbstat``, the b-trees' pages; free-list
pages are not counted), PostgreSQL: each table's ``pg_table_size`` and its indexes'
``pg_relation_size`` (space VACUUM made reusable is still counted, as on disk). By table:
the same split as bench_ingest.py's breakdown. The prune's speed is rows/s of outbox rows
(with their attempts) over the whole prune of the last cycle, CPU of this process beside.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_delivery import Patients
from bench_ingest import (
    DEFAULT_PG,
    bulk_ingest,
    database_parts,
    load_fixtures,
    make_input,
    postgres_engine,
    routed_settings,
)
from migration_timing import on_each_database
from pg_schema import maintain_own_schema
from sqlalchemy import Engine, select, text

from adapter.connectors.base import CheckResult
from adapter.consortium import RetryPolicy, load_consortium
from adapter.delivery.retention import prune
from adapter.delivery.worker import DeliveryWorker, WorkerOptions
from adapter.outbound.base import DeliveryItem, ItemResult
from adapter.runtime import make_pipeline
from adapter.settings import Settings
from adapter.store import make_engine, migrate
from adapter.store import session_factory as make_session_factory
from adapter.store.models import DeliveryAttempt, Outbox
from adapter.store.outbox.enqueue import order_hash
from adapter.store.outbox.names import destination_ids

NIGHTLY = ("outbox", "delivery_attempt")  # what the retention deletes


class Sink:
    """A destination that accepts every item at once (HTTP 200), in this process. Ordered
    (a patient's queued rows go in one send) as the example's FHIR destinations are with
    their default ``bundle: transaction``; ``--unordered``: one row per patient per send, as
    ``bundle: batch`` / ``none`` and MLLP destinations (the benchmark before decision 0065)."""

    kind = "fhir"

    def __init__(self, destination_id: str, ordered: bool = True) -> None:
        self.id = destination_id
        self.items = 0
        self.ordered = ordered

    def check(self) -> CheckResult:
        return CheckResult(reachable=True)

    def send(self, batch: list[DeliveryItem]) -> list[ItemResult]:
        self.items += len(batch)
        return [ItemResult(i.outbox_id, True, status=200) for i in batch]

    def close(self) -> None:
        pass


@dataclass
class Result:
    name: str
    kb_per_message: float = 0.0
    tables: dict[str, float] = field(default_factory=dict)  # KB per message
    rows: dict[str, float] = field(default_factory=dict)  # rows per message left
    delivered: int = 0
    pruned_rows: int = 0
    pruned_attempts: int = 0
    prune_seconds: float = 0.0
    prune_cpu: float = 0.0
    deliver_cpu: float = 0.0  # this process's CPU in the deliveries of the measured nights
    load: list[float] = field(default_factory=list)


def used(engine: Engine) -> dict[str, tuple[int, float]]:
    """Bytes (and rows) per table, its indexes added in: bench_ingest's database_parts."""
    out: dict[str, tuple[int, float]] = {}
    for (table, _index), (rows, size) in database_parts(engine).items():
        if not table:
            continue
        had_rows, had = out.get(table, (0, 0.0))
        out[table] = (had_rows + rows, had + size)
    return out


def deliver(  # type: ignore[no-untyped-def]
    engine: Engine, factory, sinks: dict[str, Sink], ordered: bool = True, batch: int = 200
) -> int:
    with factory() as session:
        names = sorted(
            set(session.scalars(select(Outbox.destination).select_from(Outbox).distinct()))
        )
    for name in names:
        sinks.setdefault(name, Sink(name, ordered))
    worker = DeliveryWorker(
        factory,
        {n: sinks[n] for n in names},
        {n: RetryPolicy() for n in names},
        options=WorkerOptions(batch_size=batch),
    )
    reports = worker.drain()
    return sum(r.tally.delivered for r in reports)


def run(
    name: str, engine: Engine, settings: Settings, args: argparse.Namespace, pruning: bool
) -> Result:
    migrate(engine)
    result = Result(name)
    consortium = load_consortium(settings.config)
    factory = make_session_factory(engine)
    pipeline = make_pipeline(settings, consortium, factory)
    fixtures = load_fixtures(consortium)
    patients = Patients(spread_births=True)
    bulk = bulk_ingest(pipeline, 100)
    sinks: dict[str, Sink] = {}
    copies = max(1, args.messages // len(fixtures))
    per_cycle = copies * len(fixtures)
    before: dict[str, tuple[int, float]] = {}
    seen: dict[str, tuple[int, float]] = {}
    for cycle in range(args.cycles):
        last = cycle == args.cycles - 1
        bulk(make_input(fixtures, copies, f"c{cycle}.", patients))
        cpu = time.process_time()
        delivered = deliver(engine, factory, sinks, not args.unordered, args.batch_size)
        if cycle:
            result.deliver_cpu += time.process_time() - cpu
        if last:
            result.delivered = delivered
        if pruning:
            cpu, wall = time.process_time(), time.perf_counter()
            done = prune(factory, cutoff=datetime.now(UTC) + timedelta(seconds=1), batch=1000)
            if last:
                result.prune_seconds = time.perf_counter() - wall
                result.prune_cpu = time.process_time() - cpu
                result.pruned_rows, result.pruned_attempts = done.rows, done.attempts
        if engine.dialect.name == "postgresql":  # what autovacuum does on a server
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                maintain_own_schema(lambda s: conn.execute(text(s)), vacuum=True)
        now = used(engine)
        if cycle == 0:  # the first night fills the empty tables; the others are measured
            before = now
        grew = sum(size for _, size in now.values()) - sum(size for _, size in seen.values())
        outbox_grew = sum(now.get(t, (0, 0.0))[1] - seen.get(t, (0, 0.0))[1] for t in NIGHTLY)
        seen = now
        result.load.append(os.getloadavg()[0])
        print(
            f"   {name}: cycle {cycle + 1}/{args.cycles}, {per_cycle} messages, "
            f"{delivered} delivered, {grew / 1024 / per_cycle:.2f} KB/message "
            f"(outbox and attempts {outbox_grew / 1024 / per_cycle:.2f}), "
            f"load {result.load[-1]:.1f}",
            flush=True,
        )
    after = used(engine)
    measured = per_cycle * (args.cycles - 1)
    for table, (rows, size) in after.items():
        rows0, size0 = before.get(table, (0, 0.0))
        result.tables[table] = (size - size0) / 1024 / measured
        result.rows[table] = (rows - rows0) / measured
    result.kb_per_message = sum(result.tables.values())
    return result


def large_prune(name: str, engine: Engine, rows: int) -> str:
    """``rows`` delivered outbox rows (one attempt each, 40 days old, 1 % dead among them)
    written by plain inserts, then one prune of them all: rows/s at a size where a batch
    that re-read what the batches before it deleted would show (decision 0064)."""
    migrate(engine)
    factory = make_session_factory(engine)
    start = datetime.now(UTC) - timedelta(days=40)
    step = 500
    with factory.begin() as session:
        ids_of = destination_ids(session, [f"d{n}" for n in range(3)])  # decision 0079
        for first in range(0, rows, step):
            batch = []
            for n in range(first, min(first + step, rows)):
                at = start + timedelta(milliseconds=n)
                dead = n % 100 == 0
                batch.append(
                    {
                        "destination_id": ids_of[f"d{n % 3}"],
                        "resource_key": n + 1,  # the prune reads no resource (0084)
                        "version_id": 1,
                        "order_key": order_hash(f"Patient/p{n % 5000}"),
                        "state": "dead" if dead else "delivered",
                        "attempts": 1,
                        "next_attempt_at": at,
                        "created_at": at,
                        "delivered_at": None if dead else at,
                        "sequence": n,
                    }
                )
            ids = session.execute(
                Outbox.__table__.insert().returning(Outbox.__table__.c.id), batch
            ).scalars()
            session.execute(
                DeliveryAttempt.__table__.insert(),
                [
                    {
                        "outbox_id": i,
                        "destination": "d0",
                        "attempted_at": start,
                        "outcome": "delivered",
                        "duration_ms": 1.0,
                    }
                    for i in ids
                ],
            )
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            maintain_own_schema(lambda s: conn.execute(text(s)), vacuum=True)
    cpu, wall = time.process_time(), time.perf_counter()
    done = prune(factory, cutoff=datetime.now(UTC) - timedelta(days=30), batch=1000)
    spent, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return (
        f"{name}: a prune of {done.rows:,} rows and {done.attempts:,} attempts in "
        f"{done.batches} batches: {spent:.1f} s, {done.rows / spent:,.0f} rows/s, this "
        f"process's CPU {cpu * 1e6 / done.rows:.0f} us/row, load {os.getloadavg()[0]:.1f}"
    )


def report(results: list[Result]) -> None:
    for backend in ("SQLite", "PostgreSQL"):
        pair = {r.name.split()[1]: r for r in results if r.name.startswith(backend)}
        if not pair:
            continue
        keep, pruned = pair.get("keep"), pair.get("prune")
        print(f"\n{backend}: database growth per lab message after the first night (KB = 1024)")
        tables = sorted(
            {t for r in pair.values() for t in r.tables},
            key=lambda t: -(keep.tables.get(t, 0.0) if keep else 0.0),
        )
        print(f"   {'table':28} {'keep KB':>9} {'rows':>7} {'prune KB':>9} {'rows':>7}")
        for table in tables:
            cells = []
            for r in (keep, pruned):
                cells += [r.tables.get(table, 0.0), r.rows.get(table, 0.0)] if r else [0.0, 0.0]
            if any(abs(c) >= 0.005 for c in cells):
                print(
                    f"   {table:28} {cells[0]:9.2f} {cells[1]:7.2f} {cells[2]:9.2f} {cells[3]:7.2f}"
                )
        if keep and pruned:
            print(
                f"   {'total':28} {keep.kb_per_message:9.2f} {'':7} {pruned.kb_per_message:9.2f}"
                f"   ({pruned.kb_per_message / keep.kb_per_message:.2f} x)"
            )
        if pruned:
            rate = pruned.pruned_rows / pruned.prune_seconds if pruned.prune_seconds else 0.0
            print(
                f"   prune of the last cycle: {pruned.pruned_rows} outbox rows and "
                f"{pruned.pruned_attempts} attempts in {pruned.prune_seconds:.2f} s: "
                f"{rate:,.0f} rows/s, this process's CPU {pruned.prune_cpu:.2f} s "
                f"({pruned.prune_cpu * 1e6 / max(pruned.pruned_rows, 1):.0f} us/row)"
            )
        for r in (keep, pruned):
            if r and r.delivered:
                cycles = max(len(r.load) - 1, 1)
                print(
                    f"   {r.name}: delivery, this process's CPU {r.deliver_cpu * 1e3 / cycles:.0f} "
                    f"ms per night of {r.delivered} rows "
                    f"({r.deliver_cpu * 1e6 / cycles / r.delivered:.0f} us/row)"
                )
        loads = [x for r in pair.values() for x in r.load]
        print(f"   load average {min(loads):.1f}-{max(loads):.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--cycles", type=int, default=4, help="nights per row, >= 2 (default 4)")
    ap.add_argument("--messages", type=int, default=300, help="messages per night (300)")
    ap.add_argument("--pg", default=DEFAULT_PG, help=f"PostgreSQL URL (default {DEFAULT_PG})")
    ap.add_argument("--no-pg", action="store_true", help="SQLite only")
    ap.add_argument("--no-sqlite", action="store_true", help="PostgreSQL only")
    ap.add_argument(
        "--batch-size",
        type=int,
        default=200,
        help="the worker's batch (200); larger than a night's patients: every claim takes "
        "whole queues (the heads, then the rows behind them)",
    )
    ap.add_argument(
        "--unordered",
        action="store_true",
        help="the sink takes one row per patient per send (not a transaction Bundle)",
    )
    ap.add_argument(
        "--large",
        type=int,
        default=0,
        help="instead: time one prune of this many delivered rows written by plain inserts",
    )
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    results: list[Result] = []
    if args.large:

        def one(engine: Engine) -> None:
            name = "SQLite" if engine.dialect.name == "sqlite" else "PostgreSQL"
            print(large_prune(name, engine, args.large), flush=True)

        on_each_database(args, one)
        return
    with tempfile.TemporaryDirectory() as tmp:
        settings = routed_settings(Path(tmp))
        for mode in ("keep", "prune"):
            if not args.no_sqlite:
                engine = make_engine(f"sqlite:///{Path(tmp) / f'{mode}.db'}")
                try:
                    results.append(run(f"SQLite {mode}", engine, settings, args, mode == "prune"))
                finally:
                    engine.dispose()
            if not args.no_pg:
                made = postgres_engine(args.pg)
                if isinstance(made, str):
                    print(f"PostgreSQL {made}: skipped")
                    continue
                engine, drop = made
                try:
                    results.append(
                        run(f"PostgreSQL {mode}", engine, settings, args, mode == "prune")
                    )
                finally:
                    drop()
    report(results)


if __name__ == "__main__":
    main()

"""Benchmark: migration 0035 (decision 0084) down and up on a PostgreSQL schema of
100,000 delivered outbox rows (10,000 patients x 10 resources, their resource rows too);
checks that the upgrade gives every row the keys it had before the downgrade.

    .venv/bin/python bench/migration_0035.py [--pg URL]

(SQLite: bench/README.md times it on the store of ``bench_ingest.py --keep-sqlite``.)
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_delivery import PG_ORDER_HASH
from bench_ingest import DEFAULT_PG
from sqlalchemy import Engine, text

from adapter.store import make_engine, migrate, session_factory
from adapter.store.engine import downgrade
from adapter.store.outbox.names import destination_ids

SCHEMA = "bench_migration_0035"
PATIENTS, EACH = 10_000, 10
NOW = datetime(2026, 12, 5, 8, 0, tzinfo=UTC)
RESOURCES = (
    "INSERT INTO resource (resource_type, id, resource_key, version_id, last_updated,"
    " deleted, content_hash, body, patient_key)"
    " SELECT 'Observation', 'o' || p || '-' || n, p * 100 + n + 1, 1, :now, false,"
    " decode('00', 'hex'), decode('00', 'hex'), 'Patient/p' || p"
    " FROM generate_series(0, :q - 1) AS n, generate_series(1, :p) AS p"
)
OUTBOX = (
    "INSERT INTO outbox (destination_id, resource_key, version_id, order_key, state,"
    " attempts, next_attempt_at, created_at)"
    f" SELECT :d, p * 100 + n + 1, 1, {PG_ORDER_HASH.format('p')}, 3, 1, :now, :now"
    " FROM generate_series(0, :q - 1) AS n, generate_series(1, :p) AS p"
)
KEYS = text("SELECT sum(order_key), sum(resource_key), count(*) FROM outbox")


def fill(engine: Engine) -> None:
    migrate(engine)
    with session_factory(engine).begin() as session:
        destination = destination_ids(session, ["d"])["d"]
    with engine.begin() as conn:
        conn.execute(text(RESOURCES), {"p": PATIENTS, "q": EACH, "now": NOW})
        conn.execute(text(OUTBOX), {"d": destination, "p": PATIENTS, "q": EACH, "now": NOW})
        conn.execute(text("ANALYZE outbox"))
        conn.execute(text("ANALYZE resource"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--pg", default=DEFAULT_PG)
    args = ap.parse_args()
    admin = make_engine(args.pg)
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{SCHEMA}" CASCADE'))
        conn.execute(text(f'CREATE SCHEMA "{SCHEMA}"'))
    engine = make_engine(args.pg + f"?options=-csearch_path%3D{SCHEMA}")
    try:
        fill(engine)
        with engine.connect() as conn:
            before = tuple(conn.execute(KEYS).one())
        start = time.perf_counter()
        downgrade(engine, "0034")
        down = time.perf_counter() - start
        start = time.perf_counter()
        migrate(engine, "0035")
        up = time.perf_counter() - start
        with engine.connect() as conn:
            after = tuple(conn.execute(KEYS).one())
        print(
            f"PostgreSQL, {before[2]:,} outbox rows: down {down:.2f} s, up {up:.2f} s; "
            f"the same keys after: {before == after}; load {os.getloadavg()[0]:.1f}"
        )
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{SCHEMA}" CASCADE'))
        admin.dispose()


if __name__ == "__main__":
    main()

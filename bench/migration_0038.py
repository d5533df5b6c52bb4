"""Benchmark: migration 0038 (decision 0089) down and up on a PostgreSQL schema of
100,000 delivered outbox rows and 100,000 resource rows (10,000 patients x 10
resources); checks that every outbox row reads the same after.

    .venv/bin/python bench/migration_0038.py [--pg URL]

(SQLite: 0038 changes nothing there.)
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from migration_0035 import fill
from migration_timing import database_options, on_each_database
from sqlalchemy import Engine, text

from adapter.store import migrate
from adapter.store.engine import downgrade

ROWS = text(
    "SELECT md5(string_agg(concat_ws('|', id, resource_key, order_key, state, attempts,"
    " next_attempt_at, destination_id, version_id, message_id), ',' ORDER BY id)), count(*)"
    " FROM outbox"
)


def run(engine: Engine) -> None:
    fill(engine)  # at head: 0038 made the empty outbox; filled after it
    with engine.connect() as conn:
        before = tuple(conn.execute(ROWS).one())
    start = time.perf_counter()
    downgrade(engine, "0037")
    down = time.perf_counter() - start
    start = time.perf_counter()
    migrate(engine, "0038")
    up = time.perf_counter() - start
    with engine.connect() as conn:
        after = tuple(conn.execute(ROWS).one())
    print(
        f"PostgreSQL, {before[1]:,} outbox rows, 100,000 resources: down {down:.2f} s,"
        f" up {up:.2f} s; every outbox row the same after: {before == after};"
        f" load {os.getloadavg()[0]:.1f}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    database_options(ap)
    args = ap.parse_args()
    args.no_sqlite = True  # 0038 changes nothing on SQLite
    on_each_database(args, run)


if __name__ == "__main__":
    main()

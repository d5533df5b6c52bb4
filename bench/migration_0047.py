"""Benchmark: migration 0047 (decision 0118) up and down on a store of ``--rows`` resources
(default 500,000: ~60,000 lab messages) of 12 facilities, bodies of 288 bytes, at 0045;
checks that every row names the same facility after the upgrade and after the downgrade.

    .venv/bin/python bench/migration_0047.py [--pg URL] [--rows N]
    .venv/bin/python bench/migration_0047.py --sqlite /tmp/m0047.db [--rows N]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_ingest import DEFAULT_PG
from migration_timing import on_file_or_schema
from sqlalchemy import Engine, text

from adapter.store import migrate
from adapter.store.engine import downgrade

SCHEMA = "bench_migration_0047"
FACILITIES = 12
# rows numbered 1..:n by a recursive CTE (SQLite has no generate_series in the library)
_NUMBERS = "WITH RECURSIVE s(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM s WHERE x < :n)"
_PG_FILL = (
    "INSERT INTO resource (resource_type, id, resource_key, version_id, last_updated,"
    " deleted, content_hash, body, patient_key, facility_id)"
    " SELECT 'Observation', md5(x::text), x, 1, now(), false, decode('00', 'hex'),"
    " decode(repeat(md5(x::text), 18), 'hex'), 'Patient/' || md5((x / 8)::text),"
    " 'facility-' || (x % :f) FROM generate_series(1, :n) AS x"
)
_SQLITE_FILL = (
    f"{_NUMBERS} INSERT INTO resource (resource_type, id, resource_key, version_id,"
    " last_updated, deleted, content_hash, body, patient_key, facility_id)"
    " SELECT 'Observation', printf('%032x', x), x, 1, 1, 0, x'00', randomblob(288),"
    " printf('Patient/%032x', x / 8), 'facility-' || (x % :f) FROM s"
)
_BY_FACILITY_OLD = text("SELECT facility_id, count(*) FROM resource GROUP BY 1 ORDER BY 1")
_BY_FACILITY_NEW = text(
    "SELECT f.name, count(*) FROM resource r LEFT JOIN facility_name f"
    " ON f.facility_key = r.facility_key GROUP BY 1 ORDER BY 1"
)


def _size(engine: Engine) -> str:
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            size = conn.execute(text("SELECT pg_total_relation_size('resource')")).scalar_one()
        else:
            pages = conn.execute(text("PRAGMA page_count")).scalar_one()
            size = pages * conn.execute(text("PRAGMA page_size")).scalar_one()
    return f"{size / 1e6:.1f} MB"


def run(engine: Engine, rows: int) -> None:
    migrate(engine, "0045")
    fill = _PG_FILL if engine.dialect.name == "postgresql" else _SQLITE_FILL
    with engine.begin() as conn:
        conn.execute(text(fill), {"n": rows, "f": FACILITIES})
    with engine.connect() as conn:
        before = list(conn.execute(_BY_FACILITY_OLD))
    size_before = _size(engine)
    start = time.perf_counter()
    migrate(engine, "0047")
    up = time.perf_counter() - start
    with engine.connect() as conn:
        upgraded = list(conn.execute(_BY_FACILITY_NEW))
    size_after = _size(engine)
    start = time.perf_counter()
    downgrade(engine, "0045")
    down = time.perf_counter() - start
    with engine.connect() as conn:
        back = list(conn.execute(_BY_FACILITY_OLD))
    print(
        f"{engine.dialect.name}, {rows:,} resources: up {up:.1f} s, down {down:.1f} s;"
        f" {size_before} -> {size_after} (file or resource with indexes);"
        f" the same facilities after up and down: {before == upgraded == back};"
        f" load {os.getloadavg()[0]:.1f}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--pg", default=DEFAULT_PG)
    ap.add_argument("--sqlite", help="a SQLite file to create (removed first)")
    ap.add_argument("--rows", type=int, default=500_000)
    args = ap.parse_args()
    on_file_or_schema(args.pg, args.sqlite, SCHEMA, lambda engine: run(engine, args.rows))


if __name__ == "__main__":
    main()

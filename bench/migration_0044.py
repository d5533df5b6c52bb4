"""Benchmark: migration 0044 (decision 0105) up and down on a PostgreSQL schema of
``--resources`` resource rows (default 90,000: ten per patient, a 300-byte body each, one
patient key in 50 a client's id rather than a UUID); checks that every patient key reads
the same after each step.

    BENCH_PG_TAG=<branch> .venv/bin/python bench/migration_0044.py [--pg URL] [--resources N]

(SQLite: 0044 changes nothing there.)
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_ingest import DEFAULT_PG, postgres_engine
from sqlalchemy import Engine, select, text

from adapter.store import migrate
from adapter.store import session_factory as make_factory
from adapter.store.engine import downgrade
from adapter.store.models import Resource

FILL = text(
    "INSERT INTO resource (resource_type, id, version_id, last_updated, deleted, content_hash,"
    " body, patient_key, facility_id)"
    " SELECT 'Observation', 'o' || i, 1, now(), false, decode(md5(i::text), 'hex'),"
    " decode(repeat(md5(i::text), 19), 'hex'),"
    " CASE WHEN i % 500 < 10 THEN 'Patient/p' || (i / 10)"
    " ELSE 'Patient/' || CAST(md5((i / 10)::text) AS uuid) END,"
    " 'qingshan-county-hospital' FROM generate_series(1, :n) AS i"
)
TEXTS = text("SELECT md5(string_agg(id || '|' || patient_key, ',' ORDER BY id)) FROM resource")


def _read(engine: Engine) -> str:
    """A digest of every (id, patient key) as the model reads them."""
    with make_factory(engine)() as session:
        rows = session.execute(select(Resource.id, Resource.patient_key)).all()
    return str(hash(tuple(sorted(rows))))


def run(engine: Engine, resources: int) -> None:
    migrate(engine, "0043")
    with engine.begin() as conn:
        conn.execute(FILL, {"n": resources})
        conn.execute(text("ANALYZE resource"))
        before = conn.execute(TEXTS).scalar_one()
        size_before = conn.execute(text("SELECT pg_total_relation_size('resource')")).scalar()
    start = time.perf_counter()
    migrate(engine, "0044")
    up = time.perf_counter() - start
    read = _read(engine)
    with engine.connect() as conn:
        size_after = conn.execute(text("SELECT pg_total_relation_size('resource')")).scalar()
    start = time.perf_counter()
    downgrade(engine, "0043")
    down = time.perf_counter() - start
    with engine.connect() as conn:
        back = conn.execute(TEXTS).scalar_one()
    migrate(engine, "0044")
    print(
        f"PostgreSQL, {resources:,} resources: up {up:.2f} s, down {down:.2f} s;"
        f" resource with its indexes {size_before / 2**20:.1f} -> {size_after / 2**20:.1f} MB;"
        f" the same texts after the downgrade: {before == back}, read the same after the"
        f" upgrade again: {_read(engine) == read}; load {os.getloadavg()[0]:.1f}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--pg", default=DEFAULT_PG)
    ap.add_argument("--resources", type=int, default=90_000)
    args = ap.parse_args()
    made = postgres_engine(args.pg)
    if isinstance(made, str):
        sys.exit(made)
    engine, drop = made
    try:
        run(engine, args.resources)
    finally:
        drop()


if __name__ == "__main__":
    main()

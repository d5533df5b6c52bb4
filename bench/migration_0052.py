"""Benchmark: migration 0052 (decision 0128) up and down on a store of ``--rows`` resources
(default 500,000: ~60,000 lab messages) whose bodies are stored without their id and meta
stamps (1,000 distinct lab Observations, stripped as the adapter stores them), at 0052.
The upgrade writes nothing; the downgrade writes every body back whole. Checks that every
body is a whole frame after the downgrade and that a sample of them names its row's id,
version and time.

    .venv/bin/python bench/migration_0052.py [--pg URL] [--rows N]
    .venv/bin/python bench/migration_0052.py --sqlite /tmp/m0052.db [--rows N]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import orjson
from bench_ingest import DEFAULT_PG
from migration_timing import on_file_or_schema
from sqlalchemy import Engine, LargeBinary, bindparam, text

from adapter.fhir.dates import format_instant
from adapter.store import migrate
from adapter.store.body_codec import is_frame, json_bytes
from adapter.store.body_stamps import StampedBody, stripped
from adapter.store.engine import downgrade

SCHEMA = "bench_pgsize_migration_0052"
SEEDS = 1000
NOW = datetime(2026, 12, 6, 21, 0, 0, 123000, tzinfo=UTC)
_NUMBERS = "WITH RECURSIVE s(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM s WHERE x < :n)"
_PG_FILL = (
    "INSERT INTO resource (resource_type, id, resource_key, version_id, last_updated,"
    " deleted, content_hash, body, patient_key)"
    " SELECT 'Observation', md5(x::text), x, 1, :now, false, decode('00', 'hex'), s.body,"
    " decode(md5((x / 8)::text), 'hex') FROM generate_series(1, :n) AS x"
    " JOIN seed s ON s.n = x % :k"
)
_SQLITE_FILL = (
    f"{_NUMBERS} INSERT INTO resource (resource_type, id, resource_key, version_id,"
    " last_updated, deleted, content_hash, body, patient_key)"
    " SELECT 'Observation', printf('%032x', x), x, 1, :now, 0, x'00', seed.body,"
    " printf('Patient/%032x', x / 8) FROM s JOIN seed ON seed.n = x % :k"
)


def _seed_bodies() -> list[dict[str, object]]:
    stamp = format_instant(NOW)
    out = []
    for n in range(SEEDS):
        body = StampedBody(
            resourceType="Observation",
            id="x",
            meta={"versionId": "1", "lastUpdated": stamp},
            status="final",
            code={"coding": [{"system": "urn:oid:2.16.156.10011.2.3.3.1", "code": f"L{n % 97}"}]},
            subject={"reference": f"Patient/{n:032x}"},
            effectiveDateTime="2026-12-06T08:30:00+08:00",
            valueQuantity={"value": n / 7, "unit": "mmol/L", "code": "mmol/L"},
            referenceRange=[{"low": {"value": 3.9}, "high": {"value": 6.1}}],
        )
        made = stripped(body)
        assert made is not None
        out.append({"n": n, "body": made})
    return out


def _size(engine: Engine) -> str:
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            size = conn.execute(text("SELECT pg_total_relation_size('resource')")).scalar_one()
        else:
            pages = conn.execute(text("PRAGMA page_count")).scalar_one()
            size = pages * conn.execute(text("PRAGMA page_size")).scalar_one()
    return f"{size / 1e6:.1f} MB"


def _check(engine: Engine) -> bool:
    stamp = format_instant(NOW).encode()
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT id, body FROM resource ORDER BY resource_key")).all()
    whole = all(is_frame(bytes(b)) for _, b in rows)
    sample = rows[:: max(1, len(rows) // 1000)]
    named = all(
        orjson.loads(json_bytes(bytes(b)))["id"] == i and stamp in json_bytes(bytes(b))
        for i, b in sample
    )
    return whole and named


def run(engine: Engine, rows: int) -> None:
    migrate(engine, "0052")
    pg = engine.dialect.name == "postgresql"
    now: object = NOW if pg else int((NOW - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds() * 1e6)
    with engine.begin() as conn:
        conn.execute(
            text("CREATE TEMP TABLE seed (n integer, body " + ("bytea)" if pg else "blob)"))
        )
        conn.execute(
            text("INSERT INTO seed (n, body) VALUES (:n, :body)").bindparams(
                bindparam("body", type_=LargeBinary())
            ),
            _seed_bodies(),
        )
        conn.execute(text(_PG_FILL if pg else _SQLITE_FILL), {"n": rows, "k": SEEDS, "now": now})
        conn.execute(text("ANALYZE resource"))  # a store in use has its statistics
    size_before = _size(engine)
    start = time.perf_counter()
    downgrade(engine, "0051")
    down = time.perf_counter() - start
    size_after = _size(engine)
    ok = _check(engine)
    start = time.perf_counter()
    migrate(engine, "0052")
    up = time.perf_counter() - start
    print(
        f"{engine.dialect.name}, {rows:,} stripped resources: down {down:.1f} s, up {up:.2f} s;"
        f" {size_before} -> {size_after} (file or resource with indexes);"
        f" every body whole and naming its row after the downgrade: {ok};"
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

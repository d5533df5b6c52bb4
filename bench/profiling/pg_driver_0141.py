"""Decision 0141: a message's small INSERT and a store read on PostgreSQL, through
SQLAlchemy's execution (before) against psycopg's driver (after), in one process on one
schema, taking turns (the host's load hits both alike).

    BENCH_PG_PREFIX=bench_NAME .venv/bin/python bench/profiling/pg_driver_0141.py \
        --pg postgresql+psycopg://postgres@127.0.0.1:5432/test [--rounds 6] [--calls 300]
    # exact: instructions of one way (callgrind), less a run with --calls 0
    valgrind --tool=callgrind --callgrind-out-file=/dev/null .venv/bin/python \
        bench/profiling/pg_driver_0141.py --pg URL --only driver --rounds 1 --calls 400

Per call: ``insert_rows`` of 10 resource rows (a lab message's Observations and its
report: the drain's ``INSERT resource``), and ``execute_rows`` of a read by key (as the
care statement and the record reads are run). "sqlalchemy" puts back the rule before this
decision (the driver on SQLite alone); the statements sent are the same in both ways (one
pipelined executemany, one SELECT)."""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import bindparam, select
from store_statements import bench_engine

from adapter.store import driver_select, fast_insert, migrate, session_factory
from adapter.store.models import Resource

_r = Resource.__table__
_READ = select(_r.c.resource_type, _r.c.id, _r.c.version_id, _r.c.body).where(
    _r.c.id == bindparam("rid")
)
AT = datetime(2026, 12, 7, 4, 0, tzinfo=UTC)
_DRIVER = fast_insert._on_driver


def _before(dialect: Any) -> bool:  # the rule before decision 0141
    return dialect.paramstyle == "qmark" and dialect.driver == "pysqlite"


_COPY_MIN = fast_insert._COPY_MIN_ROWS


def _way(name: str) -> None:
    rule = _before if name == "sqlalchemy" else _DRIVER
    # "copy": a message's rows by COPY too (tried, decision 0141)
    fast_insert._COPY_MIN_ROWS = 2 if name == "copy" else _COPY_MIN
    fast_insert._on_driver = rule  # type: ignore[assignment]
    driver_select._on_driver = rule  # type: ignore[assignment]
    fast_insert._PLANS.clear()
    driver_select._PLANS.clear()


def _rows(tag: str, start: int) -> list[dict[str, Any]]:
    return [
        {
            "resource_type": "Observation",
            "id": f"{tag}-{start + n}",
            "resource_key": start + n,
            "version_id": 1,
            "last_updated": AT,
            "deleted": False,
            "content_hash": "0" * 64,
            "body": {"resourceType": "Observation", "id": str(n), "valueString": "血糖 5.6"},
            "message_id": None,
            "patient_key": "Patient/p1",
            "facility_key": 1,
        }
        for n in range(10)
    ]


def _round(factory: Any, way: str, calls: int, key: list[int]) -> tuple[float, float]:
    """Thread CPU µs per insert and per read, ``calls`` of each, in one transaction rolled
    back (the table stays small)."""
    _way(way)
    insert_cpu = read_cpu = 0.0
    with factory() as session:
        session.begin()
        for _ in range(calls):
            rows = _rows(way, key[0])
            key[0] += 10
            t0 = time.thread_time()
            fast_insert.insert_rows(session, _r, rows)
            t1 = time.thread_time()
            driver_select.execute_rows(session, _READ, {"rid": rows[3]["id"]}, flush=False)
            t2 = time.thread_time()
            insert_cpu += t1 - t0
            read_cpu += t2 - t1
        session.rollback()
    n = max(calls, 1)
    return insert_cpu / n * 1e6, read_cpu / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--pg", required=True)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--only", choices=["sqlalchemy", "driver", "copy"])
    ap.add_argument("--copy", action="store_true", help="also the rows by COPY (tried)")
    args = ap.parse_args()
    engine, drop = bench_engine(args.pg, Path("."))
    try:
        migrate(engine)
        factory = session_factory(engine)
        key = [1_000_000]
        ways = [args.only] if args.only else ["sqlalchemy", "driver"] + ["copy"] * args.copy
        for way in ways:  # warm: plans, psycopg's prepared statements
            _round(factory, way, 20, key)
        found: dict[str, list[tuple[float, float]]] = {w: [] for w in ways}
        for _ in range(args.rounds):
            for way in ways:
                found[way].append(_round(factory, way, args.calls, key))
        for way, runs in found.items():
            inserts = [i for i, _ in runs]
            reads = [r for _, r in runs]
            print(
                f"{way:10s} insert of 10 rows: min {min(inserts):7.1f} median "
                f"{statistics.median(inserts):7.1f} µs; read: min {min(reads):6.1f} "
                f"median {statistics.median(reads):6.1f} µs"
            )
    finally:
        if drop is not None:
            drop()


if __name__ == "__main__":
    main()

"""Benchmark (decision 0128): the store's reads of resource bodies on PostgreSQL, on the tree
this runs with (run it once with the branch's code and once with the base's, e.g.
``PYTHONPATH=/work/wt/pgsize-base``, alternated): a resource by id, a version (vread), a
resource's history, search pages, and the delivery's read of a claim's bodies
(``current_bodies``). The store is filled by ``save_resources`` with the lab fixtures'
golden resources (``--copies`` copies under new ids, a third of them changed once: a
history row each), so each tree stores bodies in its own form. Prints, per read, this
process's CPU µs per call and the wall µs per call (best of ``--rounds``), and a digest of
every answer's JSON bytes: equal digests, equal answers.

    BENCH_PG_PREFIX=bench_pgsize .venv/bin/python bench/body_reads_0128.py [--copies 40]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import orjson
from bench_ingest import DEFAULT_PG, postgres_engine
from sqlalchemy import select

from adapter.store import (
    Resource,
    migrate,
    read_history,
    read_resource,
    read_version,
    save_resources,
    search,
)
from adapter.store import session_factory as make_factory
from adapter.store.outbox.claim import current_bodies

ROOT = Path(__file__).resolve().parent.parent
T0 = datetime(2026, 12, 6, 8, 0, 0, 123456, tzinfo=UTC)


def _golden() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for path in sorted(ROOT.glob("fixtures/**/*expected*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data, dict):
            out.extend(
                r for r in data.get("resources", []) if r.get("id") and r.get("resourceType")
            )
    return out


def _renamed(resource: dict[str, Any], copy: int) -> dict[str, Any]:
    out = dict(resource)
    out["id"] = f"{resource['id'][:40]}-c{copy}"
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--pg", default=DEFAULT_PG)
    ap.add_argument("--copies", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    made = postgres_engine(args.pg)
    if isinstance(made, str):
        sys.exit(f"PostgreSQL {made}")
    engine, drop = made
    try:
        run(engine, args)
    finally:
        drop()


def run(engine: Any, args: argparse.Namespace) -> None:
    migrate(engine)
    factory = make_factory(engine)
    golden = _golden()
    keys: list[tuple[str, str]] = []
    for copy in range(args.copies):
        batch = [_renamed(r, copy) for r in golden]
        with factory.begin() as session:
            save_resources(session, batch, message_id=None, now=T0 + timedelta(seconds=copy))
        keys.extend((r["resourceType"], r["id"]) for r in batch)
    changed = keys[::3]
    with factory.begin() as session:
        for rtype, rid in changed:
            body = read_resource(session, rtype, rid)
            assert body is not None
            body = {k: v for k, v in body.items() if k != "meta"}
            body["language"] = "zh-CN"
            save_resources(session, [body], message_id=None, now=T0 + timedelta(hours=1))
    with factory() as session:
        rkeys = [k for (k,) in session.execute(select(Resource.resource_key)).all()]
        types = sorted({t for t, _ in keys})
    with engine.connect() as conn:  # statistics, as a store in use has them
        conn.exec_driver_sql("ANALYZE")
        conn.commit()
    reads = {
        "read": lambda s: [read_resource(s, t, i) for t, i in keys[:500]],
        "vread": lambda s: [read_version(s, t, i, 1) for t, i in changed[:300]],
        "history": lambda s: [read_history(s, t, i)[1] for t, i in changed[:200]],
        "search page": lambda s: [
            search(s, t, [], count=50, offset=o)[1] for t in types for o in (0, 50, 100)
        ],
        "delivery": lambda s: [
            current_bodies(s, [SimpleNamespace(resource_key=k) for k in rkeys[n : n + 20]])
            for n in range(0, min(len(rkeys), 4000), 20)
        ],
    }
    print(f"{len(keys):,} resources, {len(changed):,} changed; load {os.getloadavg()[0]:.1f}")
    for name, fn in reads.items():
        cpu_best = wall_best = float("inf")
        digest = ""
        for _ in range(args.rounds):
            with factory() as session:
                c0, w0 = time.process_time(), time.perf_counter()
                answers = fn(session)
                cpu, wall = time.process_time() - c0, time.perf_counter() - w0
            cpu_best, wall_best = min(cpu_best, cpu), min(wall_best, wall)
            digest = hashlib.sha256(orjson.dumps(_plain(answers))).hexdigest()[:12]
        calls = len(answers)
        print(
            f"  {name:12} {calls:5} calls: CPU {cpu_best / calls * 1e6:8.1f} µs/call,"
            f" wall {wall_best / calls * 1e6:8.1f} µs/call; answers {digest}"
        )


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "_asdict"):
        return _plain(value._asdict())
    if isinstance(value, datetime):
        return value.isoformat()
    return value


if __name__ == "__main__":
    main()

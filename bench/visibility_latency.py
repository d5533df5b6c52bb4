"""Benchmark: facility-scoped reads (adapter/store/visibility.py) on PostgreSQL, server
time (EXPLAIN ANALYZE's execution time, best of ``--repeat``), for decision 0118
(``resource.facility_key``). Runs on any tree: the store is filled through its own API.

A store of ``--patients`` patients (10 Observations each) from 4 facilities, each
facility caring for its own quarter, and ``--orphans`` resources about no patient (Basic,
spread over the facilities: visible to their own facility only, by ``facility_key``).
Timed: counting a facility's visible Observations, its visible Basic resources, and one
patient's visible resources.

    .venv/bin/python bench/visibility_latency.py [--pg URL] [--patients N] [--orphans N]
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_ingest import DEFAULT_PG
from sqlalchemy import Engine, func, select, text

from adapter.store import make_engine, migrate, save_resources
from adapter.store import session_factory as make_factory
from adapter.store.care import note_activity
from adapter.store.models import Resource
from adapter.store.visibility import Visibility, visible

SCHEMA = "bench_visibility_latency"
T0 = datetime(2026, 12, 6, 8, tzinfo=UTC)
FACILITIES = ("county", "town-a", "town-b", "town-c")
_r = Resource.__table__


def fill(engine: Engine, patients: int, orphans: int) -> None:
    migrate(engine)
    factory = make_factory(engine)
    for start in range(0, patients, 200):
        with factory.begin() as session:
            for p in range(start, min(start + 200, patients)):
                facility = FACILITIES[p % len(FACILITIES)]
                body: list[dict[str, Any]] = [{"resourceType": "Patient", "id": f"p{p}"}]
                body += [
                    {
                        "resourceType": "Observation",
                        "id": f"o{p}-{n}",
                        "status": "final",
                        "subject": {"reference": f"Patient/p{p}"},
                    }
                    for n in range(10)
                ]
                save_resources(session, body, message_id=None, now=T0, facility_id=facility)
                note_activity(
                    session, f"p{p}", facility, at=T0, until=T0 + timedelta(days=365), detail="x"
                )
    with factory.begin() as session:
        for n in range(orphans):
            basic = {"resourceType": "Basic", "id": f"b{n}"}
            facility = FACILITIES[n % len(FACILITIES)]
            save_resources(session, [basic], message_id=None, now=T0, facility_id=facility)
    with engine.begin() as conn:
        for table in ("resource", "care_relationship", "identity_record"):
            conn.execute(text(f"ANALYZE {table}"))


def _server_ms(engine: Engine, query: Any, repeat: int) -> float:
    sql = str(query.compile(engine, compile_kwargs={"literal_binds": True}))
    best = float("inf")
    with engine.connect() as conn:
        for _ in range(repeat):
            plan = conn.execute(text("EXPLAIN (ANALYZE, FORMAT TEXT) " + sql)).scalars().all()
            found = re.search(r"Execution Time: ([0-9.]+) ms", "\n".join(plan))
            best = min(best, float(found.group(1)) if found else best)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--pg", default=DEFAULT_PG)
    ap.add_argument("--patients", type=int, default=2000)
    ap.add_argument("--orphans", type=int, default=4000)
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    admin = make_engine(args.pg)
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{SCHEMA}" CASCADE'))
        conn.execute(text(f'CREATE SCHEMA "{SCHEMA}"'))
    engine = make_engine(args.pg + f"?options=-csearch_path%3D{SCHEMA}")
    try:
        fill(engine, args.patients, args.orphans)
        scope = Visibility("town-a", T0 + timedelta(days=1))
        queries = {
            "visible Observations": select(func.count()).where(
                _r.c.resource_type == "Observation", visible(scope, _r)
            ),
            "visible Basic (no patient)": select(func.count()).where(
                _r.c.resource_type == "Basic", visible(scope, _r)
            ),
            "one patient's resources": select(_r.c.id).where(
                _r.c.patient_key == "Patient/p1", visible(scope, _r)
            ),
        }
        with engine.connect() as conn:  # the count, or the rows' number
            counts = {name: len(conn.execute(q).all()) for name, q in queries.items()}
            for name in ("visible Observations", "visible Basic (no patient)"):
                counts[name] = conn.execute(queries[name]).scalar_one()
        for name, query in queries.items():
            ms = _server_ms(engine, query, args.repeat)
            print(f"{name:28} {ms:8.2f} ms (rows/count {counts[name]})")
        print(f"load {os.getloadavg()[0]:.1f}, {datetime.now(UTC):%H:%M} UTC")
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{SCHEMA}" CASCADE'))
        admin.dispose()


if __name__ == "__main__":
    main()

"""Benchmark: facility-scoped reads (adapter/store/visibility.py) on PostgreSQL, server
time (EXPLAIN ANALYZE's execution time, best of ``--repeat``), for decision 0118
(``resource.facility_key``). Runs on any tree: the store is filled through its own API.

A store of ``--patients`` patients (10 Observations each) from 4 facilities, each
facility caring for its own quarter, and ``--orphans`` resources about no patient (Basic,
spread over the facilities: visible to their own facility only, by ``facility_key``).
Timed: counting a facility's visible Observations, its visible Basic resources, and one
patient's visible resources; with the shared buffers the best run read (which load does not
move). ``--uuid-ids``: the patients under UUIDs, as the adapter gives them (decision 0123),
rather than ``p<n>``. ``BENCH_PG_PREFIX``: the schema's name starts with it.

    .venv/bin/python bench/visibility_latency.py [--pg URL] [--patients N] [--orphans N]
        [--uuid-ids]
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import uuid
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

SCHEMA = os.environ.get("BENCH_PG_PREFIX", "bench") + "_visibility_latency"
T0 = datetime(2026, 12, 6, 8, tzinfo=UTC)
FACILITIES = ("county", "town-a", "town-b", "town-c")
_r = Resource.__table__


def patient_id(p: int, uuids: bool) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_OID, f"p{p}")) if uuids else f"p{p}"


def fill(engine: Engine, patients: int, orphans: int, uuids: bool = False) -> None:
    migrate(engine)
    factory = make_factory(engine)
    for start in range(0, patients, 200):
        with factory.begin() as session:
            for p in range(start, min(start + 200, patients)):
                facility = FACILITIES[p % len(FACILITIES)]
                pid = patient_id(p, uuids)
                body: list[dict[str, Any]] = [{"resourceType": "Patient", "id": pid}]
                body += [
                    {
                        "resourceType": "Observation",
                        "id": f"o{p}-{n}",
                        "status": "final",
                        "subject": {"reference": f"Patient/{pid}"},
                    }
                    for n in range(10)
                ]
                save_resources(session, body, message_id=None, now=T0, facility_id=facility)
                note_activity(
                    session, pid, facility, at=T0, until=T0 + timedelta(days=365), detail="x"
                )
    with factory.begin() as session:
        for n in range(orphans):
            basic = {"resourceType": "Basic", "id": f"b{n}"}
            facility = FACILITIES[n % len(FACILITIES)]
            save_resources(session, [basic], message_id=None, now=T0, facility_id=facility)
    with engine.begin() as conn:
        for table in ("resource", "care_relationship", "identity_record"):
            conn.execute(text(f"ANALYZE {table}"))


def _server_ms(engine: Engine, query: Any, repeat: int) -> tuple[float, int]:
    """(best execution time, the shared buffers its plan's top node hit and read)."""
    sql = str(query.compile(engine, compile_kwargs={"literal_binds": True}))
    best, buffers = float("inf"), 0
    with engine.connect() as conn:
        for _ in range(repeat):
            plan = "\n".join(
                conn.execute(text("EXPLAIN (ANALYZE, BUFFERS, FORMAT TEXT) " + sql)).scalars()
            )
            found = re.search(r"Execution Time: ([0-9.]+) ms", plan)
            shared = re.search(r"Buffers: shared((?: \w+=\d+)+)", plan)
            ms = float(found.group(1)) if found else best
            if ms < best:
                best = ms
                pairs = re.findall(r"(hit|read)=(\d+)", shared.group(1)) if shared else []
                buffers = sum(int(n) for _, n in pairs)
    return best, buffers


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--pg", default=DEFAULT_PG)
    ap.add_argument("--patients", type=int, default=2000)
    ap.add_argument("--orphans", type=int, default=4000)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--uuid-ids", action="store_true")
    args = ap.parse_args()
    admin = make_engine(args.pg)
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{SCHEMA}" CASCADE'))
        conn.execute(text(f'CREATE SCHEMA "{SCHEMA}"'))
    engine = make_engine(args.pg + f"?options=-csearch_path%3D{SCHEMA}")
    try:
        fill(engine, args.patients, args.orphans, args.uuid_ids)
        scope = Visibility("town-a", T0 + timedelta(days=1))
        queries = {
            "visible Observations": select(func.count()).where(
                _r.c.resource_type == "Observation", visible(scope, _r)
            ),
            "visible Basic (no patient)": select(func.count()).where(
                _r.c.resource_type == "Basic", visible(scope, _r)
            ),
            "one patient's resources": select(_r.c.id).where(
                _r.c.patient_key == f"Patient/{patient_id(1, args.uuid_ids)}",
                visible(scope, _r),
            ),
        }
        with engine.connect() as conn:  # the count, or the rows' number
            counts = {name: len(conn.execute(q).all()) for name, q in queries.items()}
            for name in ("visible Observations", "visible Basic (no patient)"):
                counts[name] = conn.execute(queries[name]).scalar_one()
        for name, query in queries.items():
            ms, buffers = _server_ms(engine, query, args.repeat)
            print(f"{name:28} {ms:8.2f} ms {buffers:7d} buffers (rows/count {counts[name]})")
        print(f"load {os.getloadavg()[0]:.1f}, {datetime.now(UTC):%H:%M} UTC")
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{SCHEMA}" CASCADE'))
        admin.dispose()


if __name__ == "__main__":
    main()

"""``identifier:of-type`` latency on PostgreSQL through the store's own ``find`` (decision
0098: an identifier's first type on its identifier's row; run it on a tree before and
after to compare).

Loads N Patients, each with a medical record number typed ``MR`` and a national-id-like
number typed ``NI`` and ``PPN`` (two types of one identifier), into a scratch schema
migrated by the tree's own code (its COPY loader writes the tree's form), ANALYZEs, then
times each search: wall milliseconds of the whole call, best and median of 7 after one
warm-up run, with the number of resources returned. Drops the schema.

    .venv/bin/python bench/pg_of_type_latency.py [--patients 50000] [--pg URL]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from adapter.fhir.search_query import parse_search  # noqa: E402
from adapter.store import make_engine, migrate, session_factory  # noqa: E402
from adapter.store.search import find  # noqa: E402
from bench.bench_search import DEFAULT_PG  # noqa: E402
from bench.pg_schema import ResourceCopy, maintain_own_schema, scratch_schema  # noqa: E402

V2 = "http://terminology.hl7.org/CodeSystem/v2-0203"
MRN = "https://hospital.example.cn/fhir/sid/mrn"
NID = "https://id.example.cn/fhir/sid/nid"


def _patient(n: int) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": f"p{n}",
        "identifier": [
            {"system": MRN, "value": f"M{n:07d}",
             "type": {"coding": [{"system": V2, "code": "MR"}]}},
            {"system": NID, "value": f"N{n:09d}",
             "type": {"coding": [{"system": V2, "code": "NI"}, {"system": V2, "code": "PPN"}]}},
        ],
        "gender": "female" if n % 2 else "male",
    }  # fmt: skip


def _searches(n: int) -> list[tuple[str, str]]:
    k = n // 2
    return [
        ("MR, a record number", f"{V2}|MR|M{k:07d}"),
        ("NI, a national id", f"{V2}|NI|N{k:09d}"),
        ("PPN, an id's second type", f"{V2}|PPN|N{k:09d}"),
        ("MR of a national id (none)", f"{V2}|MR|N{k:09d}"),
        ("an unknown number (none)", f"{V2}|MR|M9999999x"),
        ("two values", f"{V2}|MR|M{k:07d},{V2}|NI|N{k + 1:09d}"),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=50_000)
    ap.add_argument("--pg", default=os.environ.get("BENCH_PG", DEFAULT_PG))
    args = ap.parse_args()
    with scratch_schema(args.pg, "oftype") as schema:
        engine = make_engine(schema.url)
        migrate(engine)
        with schema.connect() as conn:
            started = time.perf_counter()
            loader = ResourceCopy()
            for n in range(args.patients):
                loader.add(_patient(n), last_updated="2026-12-06T00:00:00+00:00", patient_key=None)
                if n % 5000 == 4999:
                    loader.flush(conn)
            loader.flush(conn)
            conn.autocommit = True
            maintain_own_schema(conn.execute, vacuum=True)
            rows = conn.execute("SELECT count(*) FROM search_index").fetchone()
        print(
            f"{args.patients} Patients loaded in {time.perf_counter() - started:.0f} s,"
            f" {rows[0] if rows else 0} search_index rows"
        )
        factory = session_factory(engine)
        print(f"{'search':32} {'best ms':>9} {'median ms':>10} {'returned':>9}")
        with factory() as session:
            for label, value in _searches(args.patients):
                parsed = parse_search("Patient", [("identifier:of-type", value), ("_count", "20")])

                def run(parsed: Any = parsed) -> int:
                    page = find(session, ["Patient"], parsed.criteria, count=20, sort=parsed.sort)
                    return len(page.bodies)

                found = run()  # warm-up
                times = []
                for _ in range(7):
                    t = time.perf_counter()
                    run()
                    times.append((time.perf_counter() - t) * 1000)
                    session.rollback()
                times.sort()
                print(f"{label:32} {times[0]:9.2f} {times[3]:10.2f} {found:9}")
        engine.dispose()
    print(f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()

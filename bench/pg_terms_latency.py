"""Search latency on PostgreSQL through the store's own code (``find``, ``included``), for
the questions decision 0087 measured: a code, a patient, both, a code's first page, a whole
type sorted by ``-patient`` and a patient with ``_revinclude`` (decision 0088: the
references by key as arrays under GIN; run it on a tree before and after to compare).

Loads N Observations (bench_search.py's generator: 20 codes, 20 results per patient) and
their Patients into a scratch schema migrated by the tree's own code (its COPY loader
writes the tree's form), ANALYZEs, then times each search: wall milliseconds of the whole
call (statements sent, rows read, bodies decoded), best of 7 after one warm-up run, with
the number of resources returned. Drops the schema.

    .venv/bin/python bench/pg_terms_latency.py [--observations 200000] [--pg URL]
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
from adapter.store.search_include import included  # noqa: E402
from bench.bench_search import CODES, DEFAULT_PG, load  # noqa: E402
from bench.pg_schema import maintain_own_schema, scratch_schema  # noqa: E402

PATIENT = "Patient/p4321"  # --observations at least 86,440 (20 results a patient)
SEARCHES: list[tuple[str, str, list[tuple[str, str]]]] = [
    ("a code (5 % of the results)", "Observation", [("code", f"http://loinc.org|{CODES[3]}")]),
    ("a patient (20 results)", "Observation", [("patient", PATIENT)]),
    ("code and patient", "Observation", [("code", CODES[3]), ("patient", PATIENT)]),
    ("a code, _total=accurate", "Observation", [("code", CODES[3]), ("_total", "accurate")]),
    ("patient, _sort=-date", "Observation", [("patient", PATIENT), ("_sort", "-date")]),
    ("whole type, _sort=-patient", "Observation", [("_sort", "-patient")]),
    ("code, _sort=patient", "Observation", [("code", CODES[3]), ("_sort", "patient")]),
    ("patient.name chain", "Observation", [("patient._id", "p4321")]),
    ("Patient _has:Observation", "Patient", [("_has:Observation:patient:code", CODES[3]),
                                              ("_id", "p4321")]),
    ("Patient + _revinclude", "Patient", [("_id", "p4321"),
                                          ("_revinclude", "Observation:patient")]),
    ("Observation + _include", "Observation", [("patient", PATIENT),
                                               ("_include", "Observation:patient")]),
]  # fmt: skip


def _run(session: Any, rtype: str, params: list[tuple[str, str]]) -> int:
    parsed = parse_search(rtype, [*params, ("_count", "20")])
    page = find(session, [rtype], parsed.criteria, count=20, sort=parsed.sort, total=parsed.total)
    extra, _ = included(session, page.bodies, parsed.includes)
    return len(page.bodies) + len(extra)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--observations", type=int, default=200_000)
    ap.add_argument("--pg", default=os.environ.get("BENCH_PG", DEFAULT_PG))
    args = ap.parse_args()
    with scratch_schema(args.pg, "terms") as schema:
        engine = make_engine(schema.url)
        migrate(engine)
        with schema.connect() as conn:
            started = time.perf_counter()
            load(conn, args.observations, 20)
            conn.commit()
            conn.autocommit = True
            maintain_own_schema(conn.execute, vacuum=True)
        print(f"{args.observations} Observations loaded in {time.perf_counter() - started:.0f} s")
        factory = session_factory(engine)
        print(f"{'search':32} {'best ms':>9} {'median ms':>10} {'returned':>9}")
        with factory() as session:
            for label, rtype, params in SEARCHES:
                found = _run(session, rtype, params)  # warm-up
                times = []
                for _ in range(7):
                    t = time.perf_counter()
                    _run(session, rtype, params)
                    times.append((time.perf_counter() - t) * 1000)
                    session.rollback()
                times.sort()
                print(f"{label:32} {times[0]:9.2f} {times[3]:10.2f} {found:9}")
        engine.dispose()
    print(f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()

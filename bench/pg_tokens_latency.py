"""Token search latency on PostgreSQL through the store's own code, p50 and p95 per search
form (decision 0103: token values as dictionary ids in arrays; run it on a tree before and
after, alternating, to compare).

Loads N Observations (bench_search.py's generator: 20 codes, 20 results per patient) and
their Patients into a KEPT schema (``--schema``; loaded once when empty, by the tree's own
code: its COPY loader writes the tree's form), then times each search ``--runs`` times
after one warm-up (wall ms of the whole call: statements built and sent, rows read, bodies
decoded) and prints p50 / p95, the process CPU ms per call, the PostgreSQL backend's CPU
ms per call (/proc, 10 ms ticks: a mean over the runs), and the load. ``--profile N``:
cProfile of search N (its cumulative top 25), to see where the Python time goes. Drop the
schema by hand after (``DROP SCHEMA name CASCADE``).

    .venv/bin/python bench/pg_tokens_latency.py --schema tok_branch [--observations 200000]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from adapter.fhir.search_query import parse_search  # noqa: E402
from adapter.store import make_engine, migrate, session_factory  # noqa: E402
from adapter.store.search import find  # noqa: E402
from adapter.store.search_include import included  # noqa: E402
from bench.bench_search import CODES, DEFAULT_PG, load  # noqa: E402
from bench.pg_schema import loaded_rows, maintain_own_schema, scratch_schema  # noqa: E402

PATIENT = "Patient/p4321"  # --observations at least 86,440 (20 results a patient)
SEARCHES: list[tuple[str, str, list[tuple[str, str]]]] = [
    ("a patient", "Observation", [("patient", PATIENT)]),
    ("a code (system|code)", "Observation", [("code", f"http://loinc.org|{CODES[3]}")]),
    ("code and patient", "Observation", [("code", CODES[3]), ("patient", PATIENT)]),
    ("status and patient", "Observation", [("status", "final"), ("patient", PATIENT)]),
    ("patient, code:not", "Observation", [("patient", PATIENT), ("code:not", CODES[3])]),
    ("a code, _total=accurate", "Observation", [("code", CODES[3]), ("_total", "accurate")]),
    ("code, _sort=-date", "Observation", [("code", CODES[3]), ("_sort", "-date")]),
    ("status, _sort=-date", "Observation", [("status", "final"), ("_sort", "-date")]),
    ("patient, _sort=code", "Observation", [("patient", PATIENT), ("_sort", "code")]),
    ("whole type, _sort=code", "Observation", [("_sort", "code")]),
    ("patient, code:missing=false", "Observation", [("patient", PATIENT),
                                                   ("code:missing", "false")]),
    ("Patient _has:Observation:code", "Patient", [("_has:Observation:patient:code", CODES[3]),
                                                  ("_id", "p4321")]),
    ("whole type, _sort=-code", "Observation", [("_sort", "-code")]),
    ("whole type, _sort=code,-date", "Observation", [("_sort", "code,-date")]),  # 0108
]  # fmt: skip


def _run(session: Any, rtype: str, params: list[tuple[str, str]]) -> int:
    parsed = parse_search(rtype, [*params, ("_count", "20")])
    page = find(session, [rtype], parsed.criteria, count=20, sort=parsed.sort, total=parsed.total)
    extra, _ = included(session, page.bodies, parsed.includes)
    return len(page.bodies) + len(extra)


def _backend_cpu(pid: int) -> float:
    """The PostgreSQL backend's CPU seconds so far (utime + stime of /proc/PID/stat; the
    server on this host), or NaN where it cannot be read."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed(session: Any, call: Callable[[], object], runs: int, backend: int) -> tuple[float, ...]:
    """``call`` run ``runs`` times on ``session`` (rolled back after each): p50 and p95 wall
    ms, this process's CPU ms a call and the backend's CPU ms a call."""
    times, cpu = [], 0.0
    pg_before = _backend_cpu(backend)
    for _ in range(runs):
        c, t = time.process_time(), time.perf_counter()
        call()
        times.append((time.perf_counter() - t) * 1000)
        cpu += time.process_time() - c
        session.rollback()
    pg_cpu = (_backend_cpu(backend) - pg_before) * 1000 / runs
    times.sort()
    p50 = times[len(times) // 2]
    p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
    return p50, p95, cpu * 1000 / runs, pg_cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--observations", type=int, default=200_000)
    ap.add_argument("--schema", required=True, help="kept schema (loaded when empty)")
    ap.add_argument("--runs", type=int, default=21)
    ap.add_argument("--only", default="", help="comma-separated search numbers")
    ap.add_argument("--profile", type=int, default=-1, help="cProfile this search number")
    ap.add_argument("--pg", default=os.environ.get("BENCH_PG", DEFAULT_PG))
    args = ap.parse_args()
    with scratch_schema(args.pg, "tok", keep=args.schema) as schema:
        engine = make_engine(schema.url)
        if loaded_rows(schema, "Observation") == 0:
            migrate(engine)
            with schema.connect() as conn:
                started = time.perf_counter()
                load(conn, args.observations, 20)
                conn.commit()
                conn.autocommit = True
                maintain_own_schema(conn.execute, vacuum=True)
            print(f"loaded in {time.perf_counter() - started:.0f} s")
        factory = session_factory(engine)
        wanted = {int(n) for n in args.only.split(",") if n}
        print(f"load average at start {os.getloadavg()[0]:.1f}")
        print(
            f"{'#':>2} {'search':30} {'p50 ms':>8} {'p95 ms':>8} {'cpu ms':>7} {'pg cpu':>7}"
            f" {'found':>6}"
        )
        with factory() as session:
            backend = session.execute(text("SELECT pg_backend_pid()")).scalar_one()
            session.rollback()
            for n, (label, rtype, params) in enumerate(SEARCHES):
                if wanted and n not in wanted:
                    continue
                found = _run(session, rtype, params)  # warm-up
                session.rollback()
                if n == args.profile:
                    profile = cProfile.Profile()
                    profile.enable()
                    for _ in range(args.runs):
                        _run(session, rtype, params)
                        session.rollback()
                    profile.disable()
                    pstats.Stats(profile).sort_stats("cumulative").print_stats(25)
                p50, p95, per, pg_cpu = timed(
                    session, partial(_run, session, rtype, params), args.runs, backend
                )
                print(f"{n:2} {label:30} {p50:8.2f} {p95:8.2f} {per:7.2f} {pg_cpu:7.2f} {found:6}")
        engine.dispose()
    print(f"load average at end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()

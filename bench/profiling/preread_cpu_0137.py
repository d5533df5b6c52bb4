"""Client CPU of a search of ``bench/pg_strings_latency.py`` (decision 0137): load-free
figures of what this process spends per search.

Per search: the least process CPU ms per call over ``--batches`` batches of ``--runs``
calls (each rolled back), the Python function calls per search (cProfile), and the bytes
of SQL text the search sent (its statements, and the longest one). ``--loop N`` instead
runs only ``N`` calls of ``--only``'s first search and nothing else, for callgrind:

    valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.out \\
        .venv/bin/python bench/profiling/preread_cpu_0137.py --schema S --only 2 --loop 200

(compare the instruction totals of ``--loop 200`` and ``--loop 100``: their difference is
100 searches, free of start-up).

    .venv/bin/python bench/profiling/preread_cpu_0137.py --schema S [--only 2,3]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import time
from pathlib import Path
from typing import Any

from sqlalchemy import event

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from adapter.store import make_engine, session_factory  # noqa: E402
from bench.bench_search import DEFAULT_PG  # noqa: E402
from bench.pg_schema import scratch_schema  # noqa: E402
from bench.pg_strings_latency import SEARCHES, _run  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--schema", required=True, help="a schema pg_strings_latency loaded")
    ap.add_argument("--only", default="", help="comma-separated search numbers")
    ap.add_argument("--runs", type=int, default=60)
    ap.add_argument("--batches", type=int, default=5)
    ap.add_argument("--loop", type=int, default=0, help="only N calls (for callgrind)")
    ap.add_argument("--pg", default=os.environ.get("BENCH_PG", DEFAULT_PG))
    args = ap.parse_args()
    wanted = [int(n) for n in args.only.split(",") if n] or list(range(len(SEARCHES)))
    with scratch_schema(args.pg, "str", keep=args.schema) as schema:
        engine = make_engine(schema.url)
        sent: list[str] = []

        @event.listens_for(engine, "before_cursor_execute")
        def _keep(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
            sent.append(statement)

        with session_factory(engine)() as session:
            if args.loop:
                params = SEARCHES[wanted[0]][1]
                for _ in range(args.loop):
                    _run(session, params)
                    session.rollback()
                return
            print(f"{time.strftime('%H:%M:%S', time.gmtime())} UTC load {os.getloadavg()[0]:.2f}")
            for n in wanted:
                label, params = SEARCHES[n]
                for _ in range(3):  # warm: caches, pages
                    _run(session, params)
                    session.rollback()
                sent.clear()
                _run(session, params)
                session.rollback()
                sizes = [len(s.encode()) for s in sent]
                prof = cProfile.Profile()
                prof.enable()
                _run(session, params)
                prof.disable()
                session.rollback()
                calls = pstats.Stats(prof).total_calls  # type: ignore[attr-defined]
                least = float("inf")
                for _ in range(args.batches):
                    c = time.process_time()
                    for _ in range(args.runs):
                        _run(session, params)
                        session.rollback()
                    least = min(least, (time.process_time() - c) * 1000 / args.runs)
                sql = f"statements {len(sizes)} sql {sum(sizes):6d} B (longest {max(sizes)})"
                print(f"{n:2} {label:36} cpu {least:6.3f} ms  calls {calls:6d}  {sql}")
        engine.dispose()


if __name__ == "__main__":
    main()

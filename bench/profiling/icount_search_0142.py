"""Decision 0142: the instructions of ONE search of ``bench/pg_strings_latency.py``, counted
only while the measured searches run (imports, connection and warm-up uninstrumented).

    PYTHONHASHSEED=0 valgrind --tool=callgrind --instr-atstart=no \\
        --callgrind-out-file=/dev/null .venv/bin/python \\
        bench/profiling/icount_search_0142.py --schema S --only 2 --calls 40

Run from a worktree's root against a schema ``pg_strings_latency.py`` loaded: 5 warm-up
calls of the search (each rolled back, as the measured ones), then ``callgrind_control -i
on``, ``--calls`` calls, ``-i off``: valgrind's "Collected" over ``--calls`` is one search's
client instructions (the store's code, SQLAlchemy, psycopg; not the server's). ``--values``
gives each call the next of several values of the search's first parameter (a shape's
statement kept, its values bound: decision 0142). Without valgrind it runs uncounted.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from icount_0133 import _instrument  # noqa: E402

from adapter.store import make_engine, session_factory  # noqa: E402
from bench.bench_search import DEFAULT_PG  # noqa: E402
from bench.pg_schema import scratch_schema  # noqa: E402
from bench.pg_strings_latency import SEARCHES, _run  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--schema", required=True, help="a schema pg_strings_latency loaded")
    ap.add_argument("--only", type=int, default=2, help="the search's number")
    ap.add_argument("--calls", type=int, default=40)
    ap.add_argument("--values", default="", help="comma-separated values, taken in turn")
    ap.add_argument("--pg", default=os.environ.get("BENCH_PG", DEFAULT_PG))
    args = ap.parse_args()
    params = SEARCHES[args.only][1]
    values = [v for v in args.values.split(",") if v]
    calls = [
        [(params[0][0], values[n % len(values)]), *params[1:]] if values else params
        for n in range(args.calls)
    ]
    with scratch_schema(args.pg, "str", keep=args.schema) as schema:
        engine = make_engine(schema.url)
        with session_factory(engine)() as session:
            for one in calls[:5]:
                _run(session, one)
                session.rollback()
            _instrument(True)
            for one in calls:
                _run(session, one)
                session.rollback()
            _instrument(False)
        engine.dispose()


if __name__ == "__main__":
    main()

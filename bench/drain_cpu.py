"""The drain's CPU per message (decisions 0069, 0076): ORU messages received (kept on
receipt), then drained in batches of 100 in this process; the drain thread's CPU, the
process pool's threads' CPU and the worker's, per message. ``--bulk`` also stores the same
messages (other copies) by bulk ingest in the same run: the floor the drain is held to.
``--statements`` counts the SQL statements per message by kind and table (both paths);
``--pg URL`` runs on a fresh PostgreSQL schema (``BENCH_PG_PREFIX``) instead of a SQLite
file, and then also prints psycopg's round trips per message by kind (``--statements``) and
the CPU of the database backends serving the run (decision 0116);
``--profile`` prints a cProfile (thread CPU) of the drain; ``--functions`` the thread CPU
of the store's functions (bench/profiling/store_functions.py, decision 0078), without
cProfile's cost per call. Every run prints the main thread's time in the garbage
collector; ``--settled`` drains with the heap frozen (``adapter.heap.settled``), as the
server, sync and bulk ingest run: a full collection then no longer walks the start-up
heap (80-110 ms each, 1 or 2 in 300 messages: decision 0083).

    .venv/bin/python bench/drain_cpu.py [COPIES] [--workers 0|1] [--bulk] [--statements]
        [--profile] [--functions] [--settled] [--pg URL] [--batch N]
        (30 fixtures x COPIES messages; --batch: messages per drain batch, 100)
"""

import argparse
import cProfile
import gc
import logging
import os
import pstats
import sys
import tempfile
import threading
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path.cwd() / "bench"))
sys.path.insert(0, str(Path.cwd()))
from bench_ingest import bulk_ingest, load_fixtures, make_input, routed_settings
from bulk_wall import _stat_cpu, threads_cpu
from sqlalchemy import event
from store_statements import _backends, _counting_trips, _cpu_of, _dump, bench_engine, kind_of

from adapter.consortium import load_consortium
from adapter.heap import settled
from adapter.pipeline import Receipt
from adapter.pipeline import drain as drain_module
from adapter.runtime import make_pipeline
from adapter.store import migrate, session_factory

_collector = [0.0, 0.0]  # the main thread's CPU in the collector; when the pass began


def _collecting(phase, _info):
    if threading.current_thread() is not threading.main_thread():
        return
    if phase == "start":
        _collector[1] = time.thread_time()
    else:
        _collector[0] += time.thread_time() - _collector[1]


def _measure(label, pipeline, run, n, counts, profile, functions=None, engine=None, trips=None):
    pool = pipeline.translation_pool
    pids = pool.pids() if pool is not None else []
    w0 = sum(_stat_cpu(f"/proc/{p}/stat") for p in pids)
    backends = _backends(engine) if engine is not None else []
    b0 = _cpu_of(backends)
    if trips is not None:
        trips.clear()
    m0, o0 = threads_cpu()
    start = time.perf_counter()
    _collector[0] = 0.0
    counts.clear()
    if functions is not None:
        functions.cpu.clear()
        functions.calls.clear()
    done = profile.runcall(run) if profile is not None else run()
    wall = time.perf_counter() - start
    m1, o1 = threads_cpu()
    w1 = sum(_stat_cpu(f"/proc/{p}/stat") for p in pids)
    b1 = _cpu_of(_backends(engine, backends)) if engine is not None else 0.0
    k = 1000 / n
    print(
        f"{label} {done}: wall {wall * k:.2f} ms/msg; main thread CPU "
        f"{(m1 - m0) * k:.2f}, pool threads CPU {(o1 - o0) * k:.2f}, "
        f"worker CPU {(w1 - w0) * k:.2f}; load {os.getloadavg()[0]:.1f}; "
        f"of the main thread's, in the garbage collector {_collector[0] * k:.2f}"
        + (f"; database backends CPU {(b1 - b0) * k:.2f}" if engine is not None else "")
    )
    if counts:
        for kind, value in counts.most_common():
            print(f"  {value / n:7.3f}  {kind}")
        print(f"  {sum(counts.values()) / n:7.3f}  total per message")
    if trips:
        print("  psycopg round trips per message:")
        for kind, value in trips.most_common():
            print(f"  {value / n:7.3f}  {kind}")
        print(f"  {sum(trips.values()) / n:7.3f}  round trips per message")
    if functions is not None:
        functions.report(n)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("copies", nargs="?", type=int, default=10)
    ap.add_argument("--workers", type=int, default=1, help="translation workers (1)")
    ap.add_argument("--bulk", action="store_true", help="bulk ingest of other copies too")
    ap.add_argument("--statements", action="store_true")
    ap.add_argument(
        "--trips",
        action="store_true",
        help="with --pg: psycopg's round trips only, without --statements' statement event "
        "(which sends every statement through SQLAlchemy; decision 0141)",
    )
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--functions", action="store_true", help="thread CPU per store function")
    ap.add_argument(
        "--settled", action="store_true", help="drain with the heap frozen (adapter.heap)"
    )
    ap.add_argument("--top", type=int, default=40)
    ap.add_argument("--dump", type=Path, help="write the drain's profile here (pstats)")
    ap.add_argument(
        "--unique-patients", action="store_true", help="a new patient per copy (as the POST bench)"
    )
    ap.add_argument("--pg", help="a PostgreSQL URL: a fresh schema there instead of SQLite")
    ap.add_argument(
        "--batch", type=int, default=drain_module.DEFAULT_BATCH, help="messages per batch (100)"
    )
    ap.add_argument(
        "--rows",
        type=Path,
        help="with --pg: after the run, write the stored rows here (store_statements.py's "
        "form: two trees' runs of the same input compare equal)",
    )
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    functions = None
    if args.functions:
        sys.path.insert(0, str(Path.cwd() / "bench" / "profiling"))
        import store_functions as functions

        functions.install()
    with tempfile.TemporaryDirectory() as tmp:
        settings = routed_settings(Path(tmp))
        consortium = load_consortium(settings.config)
        fixtures = load_fixtures(consortium)
        engine, drop = bench_engine(args.pg, Path(tmp))
        migrate(engine)
        pipeline = make_pipeline(settings, consortium, session_factory(engine))
        counts: Counter[str] = Counter()
        trips: Counter[str] | None = None
        stack = ExitStack()
        if args.statements:

            def count(_conn, _cursor, statement, *_):
                counts[kind_of(statement)] += 1

            event.listen(engine, "before_cursor_execute", count)
        if args.pg and (args.statements or args.trips):
            trips = Counter()
            stack.enter_context(_counting_trips(trips))
        measured = engine if args.pg else None
        bulk = bulk_ingest(pipeline, 100)
        patients = None
        if args.unique_patients:
            from bench_delivery import Patients

            patients = Patients(spread_births=True)
        with pipeline.translation_workers(args.workers):
            for label, n in (("warm", 1), ("run", args.copies)):
                msgs = make_input(fixtures, n, f"{label}.", patients)
                for source, raw in msgs:
                    pipeline.receive(raw, Receipt(source, "http"))
                profile = cProfile.Profile(time.thread_time) if args.profile else None
                if label == "warm":
                    drain_module.drain(pipeline)
                    bulk(make_input(fixtures, 1, "warmbulk.", patients))
                    continue
                gc.callbacks.append(_collecting)

                def drained():
                    if not args.settled:
                        return drain_module.drain(pipeline, batch=args.batch)
                    with settled():
                        return drain_module.drain(pipeline, batch=args.batch)

                _measure(
                    "drained",
                    pipeline,
                    drained,
                    len(msgs),
                    counts,
                    profile,
                    functions,
                    measured,
                    trips,
                )
                if profile is not None and args.dump:
                    profile.dump_stats(args.dump)
                if profile is not None:
                    pstats.Stats(profile).sort_stats("cumulative").print_stats(args.top)
                    pstats.Stats(profile).sort_stats("tottime").print_stats(args.top)
                if args.bulk:
                    others = make_input(fixtures, n, "bulk.", patients)
                    _measure(
                        "bulk",
                        pipeline,
                        lambda o=others: bulk(o) and len(o),
                        len(others),
                        counts,
                        None,
                        functions,
                        measured,
                        trips,
                    )
        stack.close()
        if args.rows is not None:
            _dump(engine, args.rows)
        if drop is not None:
            drop()
        engine.dispose()


if __name__ == "__main__":
    main()

"""The receipts' CPU per document in process (decision 0107): ``pipeline.receive`` (answer on
receipt: the row, its audit record, shared transactions) from 4 threads on a fresh SQLite
file, thread CPU per receipt; ``--profile`` prints a thread-CPU cProfile. ``--pg URL``: on
a fresh PostgreSQL schema instead (``BENCH_PG_PREFIX``), with psycopg's round trips per
receipt by kind and the database backends' CPU (decision 0116).

    .venv/bin/python bench/receipt_cpu.py [COPIES] [--profile] [--pg URL]   (30 fixtures x COPIES)
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import logging
import pstats
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_delivery import Patients
from bench_ingest import load_fixtures, make_input, routed_settings
from store_statements import _backends, _counting_trips, _cpu_of, bench_engine

from adapter.consortium import load_consortium
from adapter.pipeline import Receipt
from adapter.runtime import make_pipeline
from adapter.store import migrate, session_factory


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("copies", nargs="?", type=int, default=10)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--pg", help="a PostgreSQL URL: a fresh schema there instead of SQLite")
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        settings = routed_settings(Path(tmp))
        consortium = load_consortium(settings.config)
        fixtures = load_fixtures(consortium)
        engine, drop = bench_engine(args.pg, Path(tmp))
        migrate(engine)
        pipeline = make_pipeline(settings, consortium, session_factory(engine))
        patients = Patients(spread_births=True)
        for source, raw in make_input(fixtures, 1, "warm.", patients):
            pipeline.receive(raw, Receipt(source, "http"))
        items = make_input(fixtures, args.copies, "run.", patients)
        profiles: list[cProfile.Profile] = []
        spent: list[float] = []

        def client(part: list[tuple[str, bytes]]) -> None:
            profile = cProfile.Profile(time.thread_time) if args.profile else None
            start = time.thread_time()
            if profile is not None:
                profile.enable()
            for source, raw in part:
                pipeline.receive(raw, Receipt(source, "http"))
            if profile is not None:
                profile.disable()
                profiles.append(profile)
            spent.append(time.thread_time() - start)

        threads = [threading.Thread(target=client, args=(items[i::4],)) for i in range(4)]
        trips: Counter[str] = Counter()
        groups = pipeline.receipts.groups
        backends = _backends(engine)
        database = _cpu_of(backends)
        with _counting_trips(trips) if args.pg else contextlib.nullcontext():
            wall = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            wall = time.perf_counter() - wall
        database = _cpu_of(_backends(engine, backends)) - database
        n = len(items)
        print(
            f"{n} receipts, {sum(spent) * 1000 / n:.3f} ms CPU each, "
            f"{pipeline.receipts.groups - groups} transactions, wall {wall:.2f} s"
            + (f"; database backends {database * 1000 / n:.3f} ms CPU each" if args.pg else "")
        )
        if trips:
            for kind, value in trips.most_common():
                print(f"  {value / n:7.3f}  {kind}")
            print(f"  {sum(trips.values()) / n:7.3f}  round trips per receipt")
        if drop is not None:
            drop()
        if profiles:
            stats = pstats.Stats(profiles[0])
            for profile in profiles[1:]:
                stats.add(profile)
            stats.sort_stats("cumulative").print_stats(50)


if __name__ == "__main__":
    main()

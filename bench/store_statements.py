"""SQL statements per message of bulk ingest (``Pipeline.ingest_many``), by kind and table,
on SQLite or PostgreSQL; ``--profile`` prints a cProfile of the same run instead
(decision 0050).

    .venv/bin/python bench/store_statements.py [--unique-patients] [--copies 4] [--pg URL]

Input: the ORU fixtures of bench_ingest.py made unique per copy (with ``--unique-patients``
a new patient per copy, births spread), after a warm-up of one copy; batches of 100.
Counted on the engine's ``before_cursor_execute``: a count that does not depend on load.
"""

from __future__ import annotations

import argparse
import cProfile
import logging
import os
import pstats
import re
import resource
import sys
import tempfile
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_ingest import (
    bulk_ingest,
    load_fixtures,
    make_input,
    postgres_engine,
    routed_settings,
)
from sqlalchemy import event

from adapter.consortium import load_consortium
from adapter.runtime import make_pipeline
from adapter.store import make_engine, migrate
from adapter.store import session_factory as make_session_factory

_TABLE = re.compile(r"\b(?:FROM|INTO|UPDATE|JOIN)\s+\"?(\w+)", re.IGNORECASE)


def kind_of(statement: str) -> str:
    words = statement.lstrip().split(None, 2)
    verb = words[0].upper() if words else "?"
    if verb in ("SAVEPOINT", "RELEASE", "ROLLBACK", "COMMIT", "BEGIN"):
        return verb
    tables = sorted(set(_TABLE.findall(statement)) - {"unnest"})
    return f"{verb} {','.join(tables[:3]) or '-'}"


def _cpu() -> float:
    """This process's CPU seconds (user + system; not the translation workers')."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _cpu_of(pids: list[int]) -> float:
    """CPU seconds (user + system) of other processes of this machine (Linux /proc)."""
    total = 0.0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--copies", type=int, default=4)
    ap.add_argument("--unique-patients", action="store_true")
    ap.add_argument("--pg", help="a PostgreSQL URL instead of a temporary SQLite file")
    ap.add_argument("--profile", action="store_true", help="cProfile instead of counting")
    ap.add_argument("--top", type=int, default=45)
    ap.add_argument("--profile-out", help="with --profile: also write the pstats to this file")
    ap.add_argument(
        "--translate-workers",
        type=int,
        default=0,
        help="translate in N worker processes (decision 0054): the profile, the counts and "
        "--plain's instructions are then the main process's store work",
    )
    ap.add_argument(
        "--plain",
        action="store_true",
        help="only ingest (no listener): for an instruction count of the whole process, "
        "run under valgrind with --copies N and --copies 0, difference / messages",
    )
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        settings = routed_settings(Path(tmp))
        consortium = load_consortium(settings.config)
        fixtures = load_fixtures(consortium)
        drop = None
        if args.pg:
            made = postgres_engine(args.pg)
            assert not isinstance(made, str), made
            engine, drop = made
        else:
            engine = make_engine(f"sqlite:///{Path(tmp) / 'bench.db'}")
        stack = ExitStack()  # the translation workers, stopped before the engine goes
        try:
            migrate(engine)
            pipeline = make_pipeline(settings, consortium, make_session_factory(engine))
            patients: Any = None
            if args.unique_patients:
                from bench_delivery import Patients

                patients = Patients(spread_births=True)
            bulk = bulk_ingest(pipeline, 100)
            if args.translate_workers:
                stack.enter_context(pipeline.translation_workers(args.translate_workers))
            bulk(make_input(fixtures, 1, "w", patients))  # warm-up
            messages = make_input(fixtures, args.copies, "m", patients)
            if args.plain:
                pool = pipeline.translation_pool
                pids = pool.pids() if pool is not None else []
                cpu, wall, workers = _cpu(), time.perf_counter(), _cpu_of(pids)
                bulk(messages)
                cpu, wall = _cpu() - cpu, time.perf_counter() - wall
                workers = _cpu_of(pids) - workers
                n = max(1, len(messages))
                print(
                    f"{len(messages)} messages: this process's CPU {1000 * cpu / n:.2f} ms "
                    f"per message, the translation workers' {1000 * workers / n:.2f} ms, "
                    f"wall {1000 * wall / n:.2f} ms"
                )
                return
            if args.profile:
                # the storing thread's CPU, not the wall: on a loaded host the wall is
                # mostly waiting for a CPU, which cProfile would charge to whatever ran
                profile = cProfile.Profile(time.thread_time)
                profile.runcall(bulk, messages)
                if args.profile_out:
                    profile.dump_stats(args.profile_out)
                stats = pstats.Stats(profile).sort_stats("cumulative")
                stats.print_stats(args.top)
                pstats.Stats(profile).sort_stats("tottime").print_stats(args.top)
                return
            counts: Counter[str] = Counter()

            def count(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
                counts[kind_of(statement)] += 1

            event.listen(engine, "before_cursor_execute", count)
            bulk(messages)
            event.remove(engine, "before_cursor_execute", count)
            n = len(messages)
            print(f"{n} messages, {engine.dialect.name}, unique patients: {args.unique_patients}")
            for kind, value in counts.most_common():
                print(f"  {value / n:7.3f}  {kind}")
            print(f"  {sum(counts.values()) / n:7.3f}  total per message")
        finally:
            stack.close()
            if drop:
                drop()
            engine.dispose()


if __name__ == "__main__":
    main()

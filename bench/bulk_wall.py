"""Where the wall time of bulk ingest goes (decision 0066): the storing process's main
thread CPU, its other threads' CPU (the process pool's result and feeder threads), the
translation workers' CPU, the main thread's waits on the workers' outcomes, and the time
of each batch's held-row writes and COMMIT; beside it the bulk floor of bench_ingest.py
on the same store, in alternation.

    .venv/bin/python bench/bulk_wall.py [--translate-workers 1] [--copies 10] [--rounds 3]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_ingest import (
    Floor,
    bulk_ingest,
    floor_tables,
    load_fixtures,
    make_input,
    routed_settings,
    settled_floor,
)

import adapter.pipeline.bulk as bulk_module
import adapter.pipeline.translation_pool as pool_module
from adapter.consortium import load_consortium
from adapter.runtime import make_pipeline
from adapter.store import make_engine, migrate
from adapter.store import session_factory as make_session_factory

TICK = os.sysconf("SC_CLK_TCK")


def _stat_cpu(path: str) -> float:
    fields = Path(path).read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def schedstat(pid: int, tid: int | None = None) -> tuple[float, float]:
    """(on a CPU, runnable but waiting for one) seconds of a thread (Linux schedstat)."""
    path = f"/proc/{pid}/task/{tid}/schedstat" if tid else f"/proc/{pid}/schedstat"
    run, queued, _ = Path(path).read_text().split()
    return int(run) / 1e9, int(queued) / 1e9


def threads_cpu() -> tuple[float, float]:
    """(main thread, the other threads) CPU seconds of this process."""
    main = other = 0.0
    me = os.getpid()
    for tid in os.listdir(f"/proc/{me}/task"):
        try:
            cpu = _stat_cpu(f"/proc/{me}/task/{tid}/stat")
        except FileNotFoundError:
            continue
        if int(tid) == me:
            main += cpu
        else:
            other += cpu
    return main, other


class Clock:
    def __init__(self) -> None:
        self.wait = 0.0
        self.flush = 0.0
        self.commit = 0.0
        self.batches = 0
        self._flushed = 0.0
        # the held writes and the commit: the main thread's CPU and its time waiting for
        # a CPU in them (the rest of their wall time is sleep: I/O, fsync, the GIL)
        self.write_cpu = 0.0
        self.write_queued = 0.0
        self._mark = (0.0, 0.0)

    def mark(self) -> None:
        self._mark = (time.thread_time(), schedstat(os.getpid(), os.getpid())[1])

    def since_mark(self) -> None:
        cpu, queued = self._mark
        self.write_cpu += time.thread_time() - cpu
        self.write_queued += schedstat(os.getpid(), os.getpid())[1] - queued


def instrument(clock: Clock) -> None:
    def waited(outcome: Any) -> Any:
        def wait() -> Any:
            start = time.perf_counter()
            try:
                return outcome()
            finally:
                clock.wait += time.perf_counter() - start

        return wait

    submit = pool_module.TranslationPool.submit

    def timed_submit(self: Any, *args: Any) -> Any:
        return waited(submit(self, *args))

    pool_module.TranslationPool.submit = timed_submit  # type: ignore[method-assign]
    many = getattr(pool_module.TranslationPool, "submit_many", None)
    if many is not None:

        def timed_many(self: Any, items: Any) -> Any:
            return [waited(outcome) for outcome in many(self, items)]

        pool_module.TranslationPool.submit_many = timed_many  # type: ignore[attr-defined]
    flush = bulk_module.flush_batch_writes

    def timed_flush(session: Any) -> Any:
        clock.mark()
        start = time.perf_counter()
        try:
            return flush(session)
        finally:
            clock._flushed = time.perf_counter()
            clock.flush += clock._flushed - start

    bulk_module.flush_batch_writes = timed_flush
    batch = bulk_module._batch

    def timed_batch(*args: Any) -> Any:
        clock._flushed = 0.0
        out = batch(*args)
        if clock._flushed:
            clock.commit += time.perf_counter() - clock._flushed
            clock.since_mark()
        clock.batches += 1
        return out

    bulk_module._batch = timed_batch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--copies", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--translate-workers", type=int, default=1)
    ap.add_argument("--no-floor", action="store_true")
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    clock = Clock()
    instrument(clock)
    with tempfile.TemporaryDirectory() as tmp:
        settings = routed_settings(Path(tmp))
        consortium = load_consortium(settings.config)
        fixtures = load_fixtures(consortium)
        engine = make_engine(f"sqlite:///{Path(tmp) / 'bench.db'}")
        stack = ExitStack()
        try:
            migrate(engine)
            pipeline = make_pipeline(settings, consortium, make_session_factory(engine))
            floor = Floor(engine, consortium, floor_tables(pipeline, consortium))
            bulk = bulk_ingest(pipeline, 100)
            if args.translate_workers:
                stack.enter_context(pipeline.translation_workers(args.translate_workers))
            bulk(make_input(fixtures, 1, "w", None))  # warm-up
            settled_floor(floor, make_input(fixtures, 1, "fw", None), 100)
            for n in range(args.rounds):
                messages = make_input(fixtures, args.copies, f"m{n}.", None)
                pool = pipeline.translation_pool
                pids = pool.pids() if pool is not None else []
                w0 = sum(_stat_cpu(f"/proc/{p}/stat") for p in pids)
                m0, o0 = threads_cpu()
                s0 = schedstat(os.getpid(), os.getpid())
                ws0 = [schedstat(p) for p in pids]
                for k in ("wait", "flush", "commit", "write_cpu", "write_queued"):
                    setattr(clock, k, 0.0)
                clock.batches = 0
                start = time.perf_counter()
                bulk(messages)
                wall = time.perf_counter() - start
                m1, o1 = threads_cpu()
                s1 = schedstat(os.getpid(), os.getpid())
                ws1 = [schedstat(p) for p in pids]
                wq = sum(b[1] - a[1] for a, b in zip(ws0, ws1, strict=True))
                wr = sum(b[0] - a[0] for a, b in zip(ws0, ws1, strict=True))
                w1 = sum(_stat_cpu(f"/proc/{p}/stat") for p in pids)
                k = 1000 / len(messages)
                asleep = clock.flush + clock.commit - clock.write_cpu - clock.write_queued
                line = (
                    f"bulk {len(messages) / wall:6.1f} msg/s: wall {wall * k:5.2f} ms/msg = "
                    f"main CPU {(m1 - m0) * k:5.2f} + waits on workers {clock.wait * k:5.2f} "
                    f"(+ other, not on CPU {(wall - (m1 - m0) - clock.wait) * k:5.2f}, of which "
                    f"waiting for a CPU {(s1[1] - s0[1]) * k:5.2f}); main on CPU (schedstat) "
                    f"{(s1[0] - s0[0]) * k:5.2f}; worker on CPU {wr * k:5.2f}, waiting for "
                    f"a CPU {wq * k:5.2f}, idle {(wall * len(pids) - wr - wq) * k:5.2f}; "
                    f"held writes {clock.flush * k:4.2f} + commit {clock.commit * k:4.2f} = CPU "
                    f"{clock.write_cpu * k:4.2f} + waiting for a CPU {clock.write_queued * k:4.2f}"
                    f" + asleep {asleep * k:4.2f}; "
                    f"other threads' CPU {(o1 - o0) * k:4.2f}, workers' CPU {(w1 - w0) * k:5.2f}"
                )
                if not args.no_floor:
                    floor_input = make_input(fixtures, args.copies, f"g{n}.", None)
                    c0 = time.process_time()
                    start = time.perf_counter()
                    settled_floor(floor, floor_input, 100)
                    fwall = time.perf_counter() - start
                    fcpu = time.process_time() - c0
                    line += (
                        f" | floor {len(floor_input) / fwall:6.1f} msg/s "
                        f"(wall {fwall * k:4.2f}, CPU {fcpu * k:4.2f} ms/msg) "
                        f"ratio {fwall / wall:4.2f}x; load {os.getloadavg()[0]:.1f}"
                    )
                print(line, flush=True)
            floor.close()
        finally:
            stack.close()
            engine.dispose()


if __name__ == "__main__":
    main()

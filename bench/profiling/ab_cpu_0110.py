"""Decision 0110's A/B in one process, alternated round by round (the order swapped each
round, process CPU time): SQLite connections as the adapter opens them ("base") against
the same with more PRAGMAs run at connect ("branch"; default a 64 MiB page cache).
The host's load hits both variants alike.

    .venv/bin/python bench/profiling/ab_cpu_0110.py [ROUNDS] [COPIES] ["PRAGMA a;PRAGMA b"]

Each variant has its own SQLite file and pipeline (the store grows alike in both); bulk
ingest (``ingest_many``, batches of 100, no translation workers) of the bench's ORU input
after a warm-up; CPU ms a message, and its system part (a page read from the OS cache is
system time).
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path.cwd() / "bench"))
sys.path.insert(0, str(Path.cwd()))
from bench_ingest import bulk_ingest, load_fixtures, make_input, routed_settings
from sqlalchemy import event

from adapter.consortium import load_consortium
from adapter.heap import settled
from adapter.runtime import make_pipeline
from adapter.store import make_engine, migrate, session_factory


def main() -> None:
    logging.disable(logging.WARNING)
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 12
    copies = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    pragmas = (sys.argv[3] if len(sys.argv) > 3 else "PRAGMA cache_size=-65536").split(";")
    with tempfile.TemporaryDirectory() as tmp:
        settings = routed_settings(Path(tmp))
        consortium = load_consortium(settings.config)
        fixtures = load_fixtures(consortium)
        bulks: dict[str, Callable[[list[tuple[str, bytes]]], int]] = {}
        engines = []
        for who in ("base", "branch"):
            engine = make_engine(f"sqlite:///{tmp}/{who}.db")
            migrate(engine)
            if who == "branch":

                @event.listens_for(engine, "connect")
                def _more(dbapi_connection: Any, _record: Any) -> None:
                    for pragma in pragmas:
                        dbapi_connection.execute(pragma)

                engine.dispose()  # the connections opened by migrate had none of them
            engines.append(engine)
            pipeline = make_pipeline(settings, consortium, session_factory(engine))
            bulks[who] = bulk_ingest(pipeline, 100)
            bulks[who](make_input(fixtures, 2, f"warm{who}.", None))
        times: dict[str, list[float]] = {"base": [], "branch": []}
        system: dict[str, list[float]] = {"base": [], "branch": []}
        with settled():
            for r in range(rounds):
                for who in ("base", "branch") if r % 2 == 0 else ("branch", "base"):
                    msgs = make_input(fixtures, copies, f"r{r}{who}.", None)
                    start, sys_start = time.process_time(), os.times().system
                    bulks[who](msgs)
                    times[who].append(1000 * (time.process_time() - start) / len(msgs))
                    system[who].append(1000 * (os.times().system - sys_start) / len(msgs))
        for engine in engines:
            engine.dispose()
    for who, ts in times.items():
        s = sorted(ts)
        every = " ".join(f"{t:.2f}" for t in ts)
        print(
            f"{who:6s} bulk ingest CPU ms/msg: median {s[len(s) // 2]:.2f} mean "
            f"{sum(ts) / len(ts):.2f} (system {sum(system[who]) / len(ts):.3f})  all {every}"
        )
    wins = sum(b < a for a, b in zip(times["base"], times["branch"], strict=True))
    print(f"rounds where branch < base: {wins}/{rounds}; load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()

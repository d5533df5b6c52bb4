"""Decision 0106's A/B in one process, alternated round by round (the order swapped each
round, process CPU time): this tree ("branch") against its SQLite statements sent through
SQLAlchemy's execution as before ("base": ``driver_rows`` answering None at its callers).
The host's load hits both variants alike.

    .venv/bin/python bench/profiling/ab_cpu_0106.py [ROUNDS] [COPIES]

Bulk ingest (``ingest_many``, batches of 100) of the bench's ORU input into a SQLite file
after a warm-up; CPU ms a message, and the cyclic collector's share (``gc.callbacks``).
The stored output is compared across trees by bench/profiling/dump_store.py.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path.cwd() / "bench"))
sys.path.insert(0, str(Path.cwd()))
from bench_ingest import bulk_ingest, load_fixtures, make_input, routed_settings

import adapter.identity.index.records as records
import adapter.store.care as care
import adapter.store.messages as messages
import adapter.store.resources as resources
from adapter.consortium import load_consortium
from adapter.heap import settled
from adapter.runtime import make_pipeline
from adapter.store import make_engine, migrate, session_factory

_CALLERS = (care, messages, resources, records)
_SAVED = {m: m.driver_rows for m in _CALLERS}


def _through_sqlalchemy(*args: Any, **kwargs: Any) -> None:
    return None


def use(which: str) -> None:
    for module in _CALLERS:
        module.driver_rows = _SAVED[module] if which == "branch" else _through_sqlalchemy  # type: ignore[attr-defined]


def main() -> None:
    logging.disable(logging.WARNING)
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 8
    copies = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    with tempfile.TemporaryDirectory() as tmp:
        settings = routed_settings(Path(tmp))
        engine = make_engine(f"sqlite:///{tmp}/ab.db")
        migrate(engine)
        consortium = load_consortium(settings.config)
        fixtures = load_fixtures(consortium)
        bulk = bulk_ingest(make_pipeline(settings, consortium, session_factory(engine)), 100)
        for who in ("base", "branch"):
            use(who)
            bulk(make_input(fixtures, 2, f"warm{who}.", None))
        times: dict[str, list[float]] = {"base": [], "branch": []}
        in_gc = [0.0, 0.0]
        collector: dict[str, list[float]] = {"base": [], "branch": []}

        def timed_gc(phase: str, info: dict[str, int]) -> None:
            if phase == "start":
                in_gc[1] = time.process_time()
            else:
                in_gc[0] += time.process_time() - in_gc[1]

        gc.callbacks.append(timed_gc)
        with settled():
            for r in range(rounds):
                for who in ("base", "branch") if r % 2 == 0 else ("branch", "base"):
                    msgs = make_input(fixtures, copies, f"r{r}{who}.", None)
                    use(who)
                    t0, g0 = time.process_time(), in_gc[0]
                    bulk(msgs)
                    times[who].append(1000 * (time.process_time() - t0) / len(msgs))
                    collector[who].append(1000 * (in_gc[0] - g0) / len(msgs))
        gc.callbacks.remove(timed_gc)
        engine.dispose()
    for who, ts in times.items():
        s = sorted(ts)
        every = " ".join(f"{t:.2f}" for t in ts)
        gcs = sum(collector[who]) / len(collector[who])
        print(
            f"{who:6s} bulk ingest CPU ms/msg: median {s[len(s) // 2]:.2f} mean "
            f"{sum(ts) / len(ts):.2f} (collector {gcs:.3f})  all {every}"
        )
    wins = sum(b < a for a, b in zip(times["base"], times["branch"], strict=True))
    print(f"rounds where branch < base: {wins}/{rounds}; load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()

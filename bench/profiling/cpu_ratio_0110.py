"""Decision 0110: the bulk goal (issue 14 §2: bulk ingest at >= 0.3x the bulk floor's rate)
read in process CPU time instead of wall time, so that the host's load does not decide it.

    .venv/bin/python bench/profiling/cpu_ratio_0110.py [ROUNDS] [COPIES] [unique]

One process, one SQLite file, as bench/bench_ingest.py's SQLite row builds them (the same
pipeline, ``Floor`` and input): after the same warm-ups, each round times the bulk ingest
(``ingest_many``, batches of 100, no translation workers) and the bulk floor
(``settled_floor``, 100 per transaction) of fresh copies, alternated (the order swapped each
round), by ``time.process_time`` (user + system CPU of the process: waiting for a core on a
loaded host does not count). Prints each one's CPU ms a message and the ratio
floor / bulk (the rate ratio the bench prints, in CPU).
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path.cwd() / "bench"))
sys.path.insert(0, str(Path.cwd()))
from bench_delivery import Patients
from bench_ingest import (
    Floor,
    bulk_ingest,
    floor_tables,
    load_fixtures,
    make_input,
    routed_settings,
    settled_floor,
)

from adapter.consortium import load_consortium
from adapter.runtime import make_pipeline
from adapter.store import make_engine, migrate, session_factory


def main() -> None:
    logging.disable(logging.WARNING)
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 6
    copies = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    patients = Patients(spread_births=True) if sys.argv[3:4] == ["unique"] else None
    with tempfile.TemporaryDirectory() as tmp:
        settings = routed_settings(Path(tmp))
        engine = make_engine(f"sqlite:///{tmp}/ratio.db")
        migrate(engine)
        consortium = load_consortium(settings.config)
        fixtures = load_fixtures(consortium)
        pipeline = make_pipeline(settings, consortium, session_factory(engine))
        floor = Floor(engine, consortium, floor_tables(pipeline, consortium))
        bulk = bulk_ingest(pipeline, 100)
        try:
            bulk(make_input(fixtures, 1, "bw", patients))
            settled_floor(floor, make_input(fixtures, 1, "gw", patients), 100)
            spent: dict[str, list[float]] = {"bulk": [], "floor": []}
            for n in range(rounds):
                for who in ("bulk", "floor") if n % 2 == 0 else ("floor", "bulk"):
                    msgs = make_input(fixtures, copies, f"{who[0]}{n}.", patients)
                    start = time.process_time()
                    if who == "bulk":
                        bulk(msgs)
                    else:
                        settled_floor(floor, msgs, 100)
                    spent[who].append(1000 * (time.process_time() - start) / len(msgs))
        finally:
            floor.close()
            engine.dispose()
    for who, times in spent.items():
        ordered = sorted(times)
        every = " ".join(f"{t:.2f}" for t in times)
        print(f"{who:5s} CPU ms/msg: median {ordered[len(ordered) // 2]:.2f}  all {every}")
    ratios = sorted(f / b for f, b in zip(spent["floor"], spent["bulk"], strict=True))
    print(
        f"floor / bulk CPU (the rate ratio): median {ratios[len(ratios) // 2]:.2f}x, "
        f"min {ratios[0]:.2f}x, max {ratios[-1]:.2f}x (goal >= 0.3x); "
        f"load {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    main()

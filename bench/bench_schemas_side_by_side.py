"""Benchmark: two adapters on one PostgreSQL database, each in its own schema, at once
(decision 0090): two ``bench_post_ingest.py --no-sqlite`` runs started together, the same
patients in both (``bench_delivery.Patients`` is deterministic), while ``pg_stat_activity`` is
sampled every 0.25 s for backends waiting on an advisory lock.

    .venv/bin/python bench/bench_schemas_side_by_side.py [--messages 1000] [--pg URL]
        [-- more bench_post_ingest.py arguments]

Advisory locks are one per database: before decision 0090 the audit chain's lock and the
patient index's keys of one schema were the other schema's too, and each run's drain waited
for the other's batch transactions. Printed: each run's rates (its own output's lines) and
how many samples found a backend of the benchmark (application_name ``bench_post_ingest``)
waiting on an advisory lock.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
from pathlib import Path

from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_ingest import DEFAULT_PG

from adapter.store import make_engine

HERE = Path(__file__).resolve().parent
WAITING = text(
    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
    "AND application_name = 'bench_post_ingest' AND wait_event_type = 'Lock' "
    "AND wait_event = 'advisory'"
)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--messages", type=int, default=1000)
    ap.add_argument("--pg", default=DEFAULT_PG)
    ap.add_argument("rest", nargs="*", help="more bench_post_ingest.py arguments (after --)")
    args = ap.parse_args()
    command = [
        sys.executable,
        str(HERE / "bench_post_ingest.py"),
        "--no-sqlite",
        "--pg",
        args.pg,
        "--messages",
        str(args.messages),
        "--answer",
        "on-receipt",
        *(args.rest or ["--translate-workers", "1"]),
    ]
    engine = make_engine(args.pg)
    stop = threading.Event()
    samples = [0, 0]  # samples taken, samples with a backend waiting on an advisory lock

    def sample() -> None:
        with engine.connect() as conn:
            while not stop.wait(0.25):
                samples[0] += 1
                samples[1] += int(bool(conn.execute(WAITING).scalar_one()))
                conn.rollback()

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    runs = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [run.communicate()[0] for run in runs]
    stop.set()
    sampler.join()
    engine.dispose()
    for i, output in enumerate(outputs, 1):
        print(f"== run {i} of 2 (at once, another schema each)")
        for line in output.splitlines():
            if ("client(s):" in line and "CPU ms" not in line) or "end-to-end  " in line:
                print(line)
    print(
        f"samples with a benchmark backend waiting on an advisory lock: {samples[1]} of "
        f"{samples[0]} (every 0.25 s)"
    )


if __name__ == "__main__":
    main()

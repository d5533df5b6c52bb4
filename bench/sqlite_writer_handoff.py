"""How long a short SQLite write transaction waits for another process's long ones
(decision 0102): one process writes in transactions of ``--hold`` ms back to back (a
drain's batches, ``--gap`` ms apart), this one commits a row every ``--every`` ms (receipts) and
prints the wait of each BEGIN IMMEDIATE: median, p95, max, and commits per second.

    .venv/bin/python bench/sqlite_writer_handoff.py [--seconds 5] [--hold 50] [--gap 5]

Run it on two trees to compare (the lock file of adapter/store/engine.py, or SQLite's busy
handler alone)."""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import tempfile
import time
from pathlib import Path

from sqlalchemy import text

from adapter.store import make_engine


def _long_writer(url: str, hold: float, gap: float, until: float) -> None:
    engine = make_engine(url)
    while time.time() < until:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO t (who) VALUES ('drain')"))
            time.sleep(hold)  # the batch's work inside its transaction
        time.sleep(gap)
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--hold", type=float, default=50.0, help="ms per long transaction")
    parser.add_argument("--gap", type=float, default=5.0, help="ms between long transactions")
    parser.add_argument("--every", type=float, default=10.0, help="ms between short commits")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'h.db'}"
        engine = make_engine(url)
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (n INTEGER PRIMARY KEY, who TEXT)"))
        until = time.time() + args.seconds
        other = multiprocessing.get_context("spawn").Process(
            target=_long_writer, args=(url, args.hold / 1000, args.gap / 1000, until)
        )
        other.start()
        time.sleep(0.5)  # the other process's first transaction under way
        waits: list[float] = []
        while time.time() < until:
            started = time.perf_counter()
            with engine.begin() as conn:
                waits.append((time.perf_counter() - started) * 1000)
                conn.execute(text("INSERT INTO t (who) VALUES ('receipt')"))
            time.sleep(args.every / 1000)
        other.join()
        engine.dispose()
    waits.sort()
    span = args.seconds - 0.5
    print(
        f"hold {args.hold:.0f} ms, gap {args.gap:.0f} ms: {len(waits)} short commits "
        f"({len(waits) / span:.0f}/s); wait median {statistics.median(waits):.1f} ms, "
        f"mean {statistics.fmean(waits):.1f}, p95 {waits[int(len(waits) * 0.95)]:.1f}, "
        f"max {waits[-1]:.1f}"
    )


if __name__ == "__main__":
    main()

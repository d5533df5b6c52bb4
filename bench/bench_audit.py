"""Benchmark: what the audit log and Provenance cost ingest (issue 11: at most 15 %).

    .venv/bin/python bench/bench_audit.py [--rounds 5] [--copies 2] [--pg URL | --no-pg]

The same Pipeline.ingest, in the same run and database, on the same kind of input as
bench_ingest.py (every ORU fixture, made unique per copy), in three rows that take turns in
every round so machine noise hits them alike:

  bare        audit writer off, no Provenance step: the floor (ingest as it was before)
  audit       the audit log on: receive, translate and store records, hash-chained, written
              in the message's transaction (3 audit_record rows + their links per message)
  audit+prov  as deployed: the audit log and one Provenance resource per message

Medians over the rounds; overhead = time per message against ``bare``. PostgreSQL: a
temporary schema at --pg (default 127.0.0.1:5432/test), dropped at the end.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_ingest import DEFAULT_PG, batch, load_fixtures, postgres_engine, routed_settings, timed
from sqlalchemy import Engine

from adapter.audit import writer
from adapter.consortium import load_consortium
from adapter.pipeline import steps
from adapter.pipeline.receipt import Receipt
from adapter.runtime import make_pipeline
from adapter.settings import Settings
from adapter.store import make_engine, migrate
from adapter.store import session_factory as make_session_factory

ROWS = ("bare", "audit", "audit+prov")
WITHOUT_TRACE = tuple(step for step in steps.STEPS if step is not steps.trace)
FULL_STEPS = steps.STEPS


def configure(row: str) -> None:
    writer.set_enabled(row != "bare")
    steps.STEPS = FULL_STEPS if row == "audit+prov" else WITHOUT_TRACE


def run_backend(
    engine: Engine, settings: Settings, fixtures: list, rounds: int, copies: int
) -> dict[str, list[float]]:
    migrate(engine)
    pipeline = make_pipeline(
        settings, load_consortium(settings.config), make_session_factory(engine)
    )

    def ingest(source: str, raw: bytes) -> int:
        result = pipeline.ingest(raw, Receipt(source, "cli"))
        if not result.accepted or result.duplicate:
            raise SystemExit(f"bench input was not accepted: {result.as_dict()}")
        return len(result.resources)

    found: dict[str, list[float]] = {row: [] for row in ROWS}
    try:
        for row in ROWS:  # warm-up
            configure(row)
            timed(ingest, batch(fixtures, 1, f"w{row}."))
        for n in range(rounds):
            order = ROWS if n % 2 == 0 else tuple(reversed(ROWS))
            for row in order:
                configure(row)
                per_second, _ = timed(ingest, batch(fixtures, copies, f"{row}{n}."))
                found[row].append(per_second)
    finally:
        configure("audit+prov")
    return found


def report(label: str, found: dict[str, list[float]] | str) -> None:
    print(f"\n== {label}")
    if isinstance(found, str):
        print(f"   skipped: {found}")
        return
    med = {row: statistics.median(values) for row, values in found.items()}
    base = 1000 / med["bare"]
    print(f"   {'':12} {'msg/s':>8} {'ms/msg':>8} {'overhead':>9}")
    for row in ROWS:
        ms = 1000 / med[row]
        print(f"   {row:12} {med[row]:8.0f} {ms:8.2f} {(ms / base - 1):9.1%}")


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--copies", type=int, default=2)
    ap.add_argument("--pg", default=DEFAULT_PG)
    ap.add_argument("--no-pg", action="store_true")
    args = ap.parse_args()

    import logging

    logging.disable(logging.WARNING)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        settings = routed_settings(Path(tmp))
        fixtures = load_fixtures(load_consortium(settings.config))
        results: list[tuple[str, dict[str, list[float]] | str]] = []
        engine = make_engine(f"sqlite:///{Path(tmp) / 'bench.db'}")
        try:
            results.append(
                (
                    "SQLite (WAL, temp file)",
                    run_backend(engine, settings, fixtures, args.rounds, args.copies),
                )
            )
        finally:
            engine.dispose()
        made: tuple[Engine, Callable[[], None]] | str = (
            "--no-pg given" if args.no_pg else postgres_engine(args.pg)
        )
        if isinstance(made, str):
            results.append(("PostgreSQL", made))
        else:
            pg, drop = made
            try:
                results.append(
                    (
                        "PostgreSQL (synchronous_commit=on)",
                        run_backend(pg, settings, fixtures, args.rounds, args.copies),
                    )
                )
            finally:
                drop()
    print(
        f"audit benchmark: {len(fixtures)} ORU fixtures x {args.copies} unique copies per row "
        f"and round, {args.rounds} rounds, medians; {time.perf_counter() - started:.0f} s"
    )
    for label, found in results:
        report(label, found)


if __name__ == "__main__":
    main()

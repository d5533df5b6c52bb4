"""The cost of every statement a night runs, replayed on the grown store (SQLite).

    .venv/bin/python bench/statement_costs.py [--documents 3000] [--top 25]

Why: SQLite keeps no statistics unless ANALYZE is run, so it picks an index by the shape of
a statement alone. Three statements of the night were led by a weak index last time (the
referral Task check, the ledger's follow-up, the console's listing): each read every row of
a type per document and slowed the night as the store grew, while nothing in a short test
showed it. This audit looks for the next one instead of waiting for a night to slow.

How: two nights of the same generator and seed as bench_night.py, one `--growth` times
larger than the other (default 750 and 3,000 documents), are each synchronised **in this
process** by the real `adapter sync` command into a store of their own, with an SQLAlchemy
listener that keeps every distinct SELECT, UPDATE and DELETE and the last parameters it ran
with (the largest store it saw). Then each statement of the larger night is run again on
each grown store with the last parameters of that store's night (UPDATE / DELETE inside a
transaction rolled back),
counting SQLite virtual-machine instructions (a progress handler every 100 instructions),
and the instructions per row returned (+1) are compared: a keyed read costs the same on
both (growth 1.0), a statement that reads a whole type grows with the store (about
`--growth` times). The plans (`EXPLAIN QUERY PLAN`) of the growing ones are printed.
Statements run with `executemany` (the bulk inserts) are not replayed; statements the night
does not run (the API's searches, the console's pages) are not seen.

The exit status is 1 when a statement costing over 1,000 instructions grew more than
`--limit` times (default 2.0). Checked against the fault it is meant to find: with the
referral Task check of decision 0044 put back as it was (`resource_type = 'Task'`), the
audit names it (growth 4.3-4.5 for a 4x store, its plan on the type's index).
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_night import DAY, generate, write_config
from sqlalchemy import event
from sqlalchemy.engine import Engine

from adapter.store import make_engine, migrate


@dataclass
class Seen:
    sql: str
    params: Any
    calls: int = 0


def record(seen: dict[str, Seen]) -> Any:
    """Keep every distinct SELECT / UPDATE / DELETE and its last parameters."""

    def _keep(_conn, _cursor, statement, parameters, _context, executemany):  # type: ignore[no-untyped-def]
        if executemany:
            return
        head = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else ""
        if head not in ("SELECT", "UPDATE", "DELETE", "WITH"):
            return
        entry = seen.get(statement)
        if entry is None:
            entry = seen[statement] = Seen(statement, parameters)
        entry.params = parameters
        entry.calls += 1

    event.listen(Engine, "before_cursor_execute", _keep)
    return _keep


def run_night(documents: int, seed: int, folder: Path) -> tuple[Path, dict[str, Seen]]:
    """Generate and synchronise a night in `folder`; the store and its statements."""
    night = generate(folder / "night", documents, seed, 0.3)
    config = write_config(folder, night, 50)
    db = folder / "night.db"
    url = f"sqlite:///{db}"
    engine = make_engine(url)
    migrate(engine)  # before the listener: the migrations' statements are not the night's
    engine.dispose()
    os.environ.update(
        {
            "ADAPTER_DATABASE_URL": url,
            "ADAPTER_CONFIG": str(config),
            "ADAPTER_TRANSLATE_WORKERS": "0",
            "ADAPTER_LOG_LEVEL": "WARNING",
        }
    )
    from adapter.cli import app  # imported after the settings' environment is set
    from adapter.settings import get_settings

    get_settings.cache_clear()  # the second night's URL and configuration
    seen: dict[str, Seen] = {}
    listener = record(seen)
    try:
        app(["sync", "--day", DAY.isoformat(), "--json", "--quiet"], standalone_mode=False)
    except SystemExit:
        pass  # the sync's exit code (1 when gaps remain) is not this audit's concern
    finally:
        event.remove(Engine, "before_cursor_execute", listener)
    return db, seen


def replay(db: Path, entry: Seen) -> tuple[int, int, str]:
    """(instructions, rows, plan) of one statement on the grown store."""
    con = sqlite3.connect(db, isolation_level=None)
    steps = [0]

    def _tick() -> int:
        steps[0] += 100
        return 0

    params = entry.params if entry.params is not None else ()
    try:
        plan = "\n".join(
            f"      {row[3]}" for row in con.execute("EXPLAIN QUERY PLAN " + entry.sql, params)
        )
        con.set_progress_handler(_tick, 100)
        con.execute("BEGIN")
        try:
            rows = len(con.execute(entry.sql, params).fetchall())
        finally:
            con.set_progress_handler(None, 100)
            con.execute("ROLLBACK")
    except sqlite3.Error as error:  # e.g. a temporary table of the run, gone now
        return -1, 0, f"      not replayed: {error}"
    finally:
        con.close()
    return steps[0], rows, plan


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--documents", type=int, default=3000, help="the larger night (3000)")
    ap.add_argument("--growth", type=float, default=4.0, help="larger / smaller night (4)")
    ap.add_argument("--seed", type=int, default=14)
    ap.add_argument("--top", type=int, default=20)
    ap.add_argument(
        "--limit",
        type=float,
        default=2.0,
        help="fail when a statement's instructions grow more than this many times between "
        "the two stores (2.0; a scan grows with the store, ~--growth times)",
    )
    args = ap.parse_args()
    small_docs = max(1, round(args.documents / args.growth))
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        small_db, small_seen = run_night(small_docs, args.seed, Path(folder) / "small")
        large_db, large_seen = run_night(args.documents, args.seed, Path(folder) / "large")
        print(
            f"nights of {small_docs} and {args.documents} documents synchronised in "
            f"{time.perf_counter() - started:.0f} s; stores {small_db.stat().st_size / 1e6:.0f}"
            f" and {large_db.stat().st_size / 1e6:.0f} MB; {len(large_seen)} distinct "
            "statements (SELECT / UPDATE / DELETE) in the larger night"
        )
        results = []
        for sql, entry in large_seen.items():
            steps, rows, plan = replay(large_db, entry)
            before = small_seen.get(sql)
            small_steps, small_rows = (
                replay(small_db, before)[:2] if before is not None else (-1, 0)
            )
            # instructions per row returned (+1), so a read that returns more rows in the
            # larger store is not taken for a scan
            growth = (
                (steps / (rows + 1)) / (small_steps / (small_rows + 1))
                if small_steps > 0 and steps > 0
                else 0.0
            )
            results.append((growth, steps, rows, small_steps, entry, plan))
        results.sort(key=lambda r: (r[0], r[1]), reverse=True)
        over = [r for r in results if r[0] > args.limit and r[1] > 1_000]
        print(
            f"\n{'growth':>7} {'instructions':>12} {'rows':>6} {'(smaller)':>10} "
            f"{'calls':>6}  statement"
        )
        for growth, steps, rows, small_steps, entry, plan in results[: args.top]:
            flat = " ".join(entry.sql.split())
            print(
                f"{growth:>7.2f} {steps:>12,} {rows:>6} {small_steps:>10,} {entry.calls:>6}  "
                f"{flat[:140]}"
            )
            if growth > args.limit or steps < 0:
                print(plan)
        not_seen = sum(1 for r in results if r[3] < 0)
        print(
            f"\n{len(over)} statement(s) whose instructions per row grew more than "
            f"{args.limit}x (and cost over 1,000); {not_seen} ran only in the larger night"
        )
        sys.exit(1 if over else 0)


if __name__ == "__main__":
    main()

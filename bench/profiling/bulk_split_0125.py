"""Decision 0125: where one bulk-ingest process spends its time on SQLite, by sampling.

    .venv/bin/python bench/profiling/bulk_split_0125.py run COPIES [unique]
    py-spy record -r 500 -f raw -o OUT -- .venv/bin/python bench/profiling/bulk_split_0125.py run 40
    .venv/bin/python bench/profiling/bulk_split_0125.py split OUT [FUNCTION ...]

``run``: a fresh SQLite store, a warm-up of 2 copies of the bench's ORU input, then COPIES
copies by ``ingest_many`` (batches of 100, no translation workers) inside ``measured``, so
that a sampling profiler's stacks of the bulk can be told from the set-up's; prints the
CPU ms a message. (py-spy is no dependency of the project: install it in a venv of its own.)

``split``: from py-spy's raw output (collapsed stacks), the share of the bulk's samples
(stacks through ``measured``) in each stage (inclusive: a stage holds what it calls), and
the driver's own work (SQLite's executemany, a statement's execution, the commit) by
caller. Wrapping functions with timers (bulk_stages_0110.py) and cProfile both cost more
per call than the small functions they time (decision 0120); a sampler adds nothing to a
call, and its shares do not move with the host's load as absolute times do.
"""

from __future__ import annotations

import collections
import logging
import re
import sys
import tempfile
import time
from pathlib import Path

STAGES = (
    "_start", "translate_for", "check_resources", "_store_jobs", "create_message",
    "audit_translated", "resolve_identity", "merge_with_stored", "save", "index_values",
    "content_hash",
    "note_care", "route", "trace", "enqueue", "record_result", "audit_stored",
    "flush_batch_writes", "_flush_pending", "do_commit",
)  # fmt: skip
DRIVER = ("driver_executemany", "driver_rows", "do_commit")


def run(copies: int, unique: bool) -> None:
    sys.path.insert(0, str(Path.cwd() / "bench"))
    sys.path.insert(0, str(Path.cwd()))
    from bench_delivery import Patients
    from bench_ingest import bulk_ingest, load_fixtures, make_input, routed_settings

    from adapter.consortium import load_consortium
    from adapter.runtime import make_pipeline
    from adapter.store import make_engine, migrate, session_factory

    logging.disable(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        settings = routed_settings(Path(tmp))
        engine = make_engine(f"sqlite:///{tmp}/split.db")
        migrate(engine)
        consortium = load_consortium(settings.config)
        fixtures = load_fixtures(consortium)
        pipeline = make_pipeline(settings, consortium, session_factory(engine))
        bulk = bulk_ingest(pipeline, 100)
        patients = Patients(spread_births=True) if unique else None
        bulk(make_input(fixtures, 2, "warm.", patients))
        messages = make_input(fixtures, copies, "run.", patients)

        def measured() -> None:
            bulk(messages)

        start = time.process_time()
        measured()
        print(f"CPU ms a message: {1000 * (time.process_time() - start) / len(messages):.2f}")
        engine.dispose()


def _name(frame: str) -> str:
    """A frame's function without its class (``Translator.translate_for``: translate_for)."""
    return frame.split(" (", 1)[0].rsplit(".", 1)[-1]


def split(path: str, wanted: tuple[str, ...]) -> None:
    inclusive: collections.Counter[str] = collections.Counter()
    driver: collections.Counter[str] = collections.Counter()
    total = 0
    for line in Path(path).read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if " (" not in stack or "measured" not in stack:
            continue
        n = int(count)
        total += n
        names = [_name(f) for f in stack.split(";")]
        for name in set(names):
            inclusive[name] += n
        for at, name in enumerate(names):
            if name in DRIVER:
                callers = " <- ".join(reversed(names[max(0, at - 4) : at]))
                driver[f"{name} <- {callers}"] += n
                break
    if not total:
        raise SystemExit("no stack through measured(): was the file recorded from `run`?")
    print(f"{total} samples of the bulk")
    for name in wanted or STAGES:
        print(f"{100 * inclusive[name] / total:6.2f} %  {name}")
    print("the driver's own work (C: SQLite), by caller:")
    for name, n in driver.most_common(12):
        print(f"{100 * n / total:6.2f} %  {re.sub(r'<locals>.', '', name)}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["run"]:
        run(int(sys.argv[2]), sys.argv[3:4] == ["unique"])
    elif sys.argv[1:2] == ["split"]:
        split(sys.argv[2], tuple(sys.argv[3:]))
    else:
        raise SystemExit(__doc__)

"""Decision 0120: a fixed bulk run on SQLite, for instruction counts (load-independent).

    valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        .venv/bin/python bench/profiling/icount_0120.py COPIES [unique]

Run from a worktree's root (its ``adapter`` is imported). Sets up a fresh SQLite store,
ingests a warm-up of 2 copies of the bench's ORU input (30 fixtures a copy), then COPIES
copies with ``ingest_many`` (batches of 100, no translation workers). The bulk's instructions
are the difference between a run with COPIES and one with 0 (the same set-up and warm-up):
``(I(COPIES) - I(0)) / (30 * COPIES)`` a message. Set ``PYTHONHASHSEED=0`` for both. With
``unique`` every copy is a new patient (``bench_delivery.Patients``, births spread).
"""

from __future__ import annotations

import logging
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path.cwd() / "bench"))
sys.path.insert(0, str(Path.cwd()))
from bench_delivery import Patients
from bench_ingest import bulk_ingest, load_fixtures, make_input, routed_settings
from sqlalchemy import Engine

from adapter.consortium import load_consortium
from adapter.runtime import make_pipeline
from adapter.store import make_engine, migrate, session_factory


def ingest_copies(
    engine: Engine,
    tmp: Path,
    copies: int,
    unique: bool,
    instrument: Callable[[bool], None] = lambda _: None,
) -> None:
    """The measured run on ``engine`` (migrated here): the warm-up, then ``copies`` copies,
    ``instrument(True)`` / ``instrument(False)`` around them (pg_icount_0156.py counts
    only them)."""
    settings = routed_settings(tmp)
    migrate(engine)
    consortium = load_consortium(settings.config)
    fixtures = load_fixtures(consortium)
    pipeline = make_pipeline(settings, consortium, session_factory(engine))
    bulk = bulk_ingest(pipeline, 100)
    patients = Patients(spread_births=True) if unique else None
    bulk(make_input(fixtures, 2, "warm.", patients))
    messages = make_input(fixtures, copies, "run.", patients) if copies else []
    instrument(True)
    if messages:
        bulk(messages)
    instrument(False)


def main() -> None:
    logging.disable(logging.WARNING)
    copies = int(sys.argv[1])
    unique = len(sys.argv) > 2 and sys.argv[2] == "unique"
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{tmp}/icount.db")
        ingest_copies(engine, Path(tmp), copies, unique)
        engine.dispose()


if __name__ == "__main__":
    main()

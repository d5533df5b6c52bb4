"""Decision 0156: a fixed bulk run on PostgreSQL, for instruction counts (load-independent).

    BENCH_PG_PREFIX=bench_NAME PYTHONHASHSEED=0 valgrind --tool=callgrind \\
        --callgrind-out-file=/dev/null .venv/bin/python bench/profiling/pg_icount_0156.py \\
        COPIES [unique]

``icount_0120.py`` on a fresh PostgreSQL schema (``ADAPTER_AB_URL``, default the local
``test`` database; the schema's name starts with ``BENCH_PG_PREFIX``, dropped at the end).
Run from a worktree's root (its ``adapter`` is imported). Migrates the schema, ingests a
warm-up of 2 copies of the bench's ORU input (30 fixtures a copy), then COPIES copies with
``ingest_many`` (batches of 100, no translation workers). The bulk's instructions in this
process (the Python side: the adapter, SQLAlchemy, psycopg; not the server's backends) are
the difference between a run with COPIES and one with 0: ``(I(COPIES) - I(0)) / (30 *
COPIES)`` a message. Set ``PYTHONHASHSEED=0`` for both. With ``unique`` every copy is a
new patient (``bench_delivery.Patients``, births spread).

Faster: add ``--instr-atstart=no``; then only the measured copies' ``ingest_many`` is
instrumented (``icount_0133._instrument``), the set-up, migrations and warm-up run
uninstrumented, and the same difference applies (the run with 0 counts ~nothing).
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path.cwd() / "bench"))
sys.path.insert(0, str(Path.cwd()))
sys.path.insert(0, str(Path.cwd() / "bench" / "profiling"))
from bench_ingest import postgres_engine
from icount_0120 import ingest_copies
from icount_0133 import _instrument

URL = os.environ.get("ADAPTER_AB_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def main() -> None:
    logging.disable(logging.WARNING)
    copies = int(sys.argv[1])
    unique = len(sys.argv) > 2 and sys.argv[2] == "unique"
    made = postgres_engine(URL)
    if isinstance(made, str):
        raise SystemExit(f"PostgreSQL {made}")
    engine, drop = made
    try:
        with tempfile.TemporaryDirectory() as tmp:
            ingest_copies(engine, Path(tmp), copies, unique, _instrument)
    finally:
        drop()


if __name__ == "__main__":
    main()

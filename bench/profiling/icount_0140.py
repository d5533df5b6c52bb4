"""Decision 0140: the instructions of the bulk *or* of the bulk floor a message, counted
exactly, in the set-up of ``cpu_ratio_0110.py`` (one process, one SQLite file, both
warmed up).

    PYTHONHASHSEED=0 valgrind --tool=callgrind --instr-atstart=no \\
        --callgrind-out-file=/dev/null .venv/bin/python bench/profiling/icount_0140.py WHO COPIES

WHO is ``bulk`` (``ingest_many``, batches of 100, no translation workers) or ``floor``
(``settled_floor``, 100 per transaction). Run from a worktree's root (its ``adapter`` is
imported). As ``icount_0133.py``, ``callgrind_control -i on`` just before the measured
copies are stored and ``-i off`` just after: valgrind's "Collected" divided by
30 × COPIES is WHO's instructions a message. Both are warmed up (one copy each) whatever
WHO is, so that both see the process as ``cpu_ratio_0110.py``'s rounds do.
"""

from __future__ import annotations

import logging
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path.cwd() / "bench"))
sys.path.insert(0, str(Path.cwd()))
from bench_ingest import (
    Floor,
    bulk_ingest,
    floor_tables,
    load_fixtures,
    make_input,
    routed_settings,
    settled_floor,
)
from icount_0133 import _instrument

from adapter.consortium import load_consortium
from adapter.runtime import make_pipeline
from adapter.store import make_engine, migrate, session_factory


def main() -> None:
    logging.disable(logging.WARNING)
    who, copies = sys.argv[1], int(sys.argv[2])
    assert who in ("bulk", "floor"), who
    with tempfile.TemporaryDirectory() as tmp:
        settings = routed_settings(Path(tmp))
        engine = make_engine(f"sqlite:///{tmp}/icount.db")
        migrate(engine)
        consortium = load_consortium(settings.config)
        fixtures = load_fixtures(consortium)
        pipeline = make_pipeline(settings, consortium, session_factory(engine))
        floor = Floor(engine, consortium, floor_tables(pipeline, consortium))
        bulk = bulk_ingest(pipeline, 100)
        try:
            bulk(make_input(fixtures, 1, "bw", None))
            settled_floor(floor, make_input(fixtures, 1, "gw", None), 100)
            messages = make_input(fixtures, copies, f"{who[0]}0.", None)
            _instrument(True)
            if who == "bulk":
                bulk(messages)
            else:
                settled_floor(floor, messages, 100)
            _instrument(False)
        finally:
            floor.close()
            engine.dispose()


if __name__ == "__main__":
    main()

"""Decision 0133: ``icount_0120.py``'s bulk, with the instructions counted only while the
measured copies are stored (set-up and warm-up run uninstrumented: minutes, not an hour,
on a loaded host).

    PYTHONHASHSEED=0 valgrind --tool=callgrind --instr-atstart=no \\
        --callgrind-out-file=/dev/null .venv/bin/python bench/profiling/icount_0133.py COPIES

Run from a worktree's root (its ``adapter`` is imported). The same fresh SQLite store,
warm-up (2 copies of the bench's ORU input) and ``ingest_many`` of COPIES copies (batches
of 100, no translation workers) as ``icount_0120.py``; ``callgrind_control -i on`` just
before the copies are stored and ``-i off`` just after, so valgrind's "Collected" is the
bulk's instructions alone: divide by 30 × COPIES for a message. Without valgrind it runs
the same bulk, uncounted.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path.cwd() / "bench"))
sys.path.insert(0, str(Path.cwd()))
from bench_ingest import bulk_ingest, load_fixtures, make_input, routed_settings

from adapter.consortium import load_consortium
from adapter.runtime import make_pipeline
from adapter.store import make_engine, migrate, session_factory


def _instrument(on: bool) -> None:
    """callgrind's instrumentation of this process on or off (when under callgrind)."""
    control = shutil.which("callgrind_control")
    if control and "vgpreload" in os.environ.get("LD_PRELOAD", ""):  # under valgrind
        flag = "on" if on else "off"
        subprocess.run([control, "-i", flag, str(os.getpid())], check=True, capture_output=True)


def main() -> None:
    logging.disable(logging.WARNING)
    copies = int(sys.argv[1])
    with tempfile.TemporaryDirectory() as tmp:
        settings = routed_settings(Path(tmp))
        engine = make_engine(f"sqlite:///{tmp}/icount.db")
        migrate(engine)
        consortium = load_consortium(settings.config)
        fixtures = load_fixtures(consortium)
        pipeline = make_pipeline(settings, consortium, session_factory(engine))
        bulk = bulk_ingest(pipeline, 100)
        bulk(make_input(fixtures, 2, "warm.", None))
        messages = make_input(fixtures, copies, "run.", None)
        _instrument(True)
        bulk(messages)
        _instrument(False)
        engine.dispose()


if __name__ == "__main__":
    main()

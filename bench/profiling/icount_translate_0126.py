"""Decision 0126: the instructions of the translation alone (``Translator.translate_for``: read,
map, unread report, resource check) of the bench's ORU input, exact to the message.

    MC_CG=1 PYTHONHASHSEED=0 valgrind --tool=callgrind --instr-atstart=no \\
        --collect-atstart=no --toggle-collect=functools_reduce --callgrind-out-file=OUT \\
        .venv/bin/python bench/profiling/icount_translate_0126.py [ROUNDS] [COPIES]

Run from a worktree's root (its ``adapter`` is imported). After the set-up and one warm-up
translation of every message, the measured rounds run inside ``functools.reduce``:
callgrind counts only there (``--toggle-collect``), and with ``MC_CG`` set the script turns
valgrind's instrumentation on just before (``callgrind_control -i on``), so the start-up
(≈ 17 G instructions, loading the mapping sets) runs uninstrumented: a run takes minutes,
not tens of minutes, and no start-up noise enters the count. Instructions a message:
``Collected`` / (ROUNDS x COPIES x 30) (default 2 x 2 = 120 translations).
"""

from __future__ import annotations

import functools
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path.cwd() / "bench"))
sys.path.insert(0, str(Path.cwd()))
from bench_ingest import load_fixtures, make_input, routed_settings

from adapter.consortium import load_consortium
from adapter.heap import settled
from adapter.runtime import make_pipeline
from adapter.store import make_engine, session_factory


def main() -> None:
    logging.disable(logging.WARNING)
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    copies = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    with tempfile.TemporaryDirectory() as tmp:
        settings = routed_settings(Path(tmp))
        engine = make_engine(f"sqlite:///{tmp}/t.db")
        consortium = load_consortium(settings.config)
        fixtures = load_fixtures(consortium)
        pipeline = make_pipeline(settings, consortium, session_factory(engine))
        translator = pipeline.translator
        sources = {s.id: (f, s) for f in consortium.facilities for s in f.sources}
        msgs = [(sources[sid], raw) for sid, raw in make_input(fixtures, copies, "t.", None)]
        for (facility, source), raw in msgs:  # warm-up
            translator.translate_for(raw, facility, source)
        if os.environ.get("MC_CG"):
            command = ["callgrind_control", "-i", "on", str(os.getpid())]
            subprocess.run(command, check=False, capture_output=True)
        with settled():
            functools.reduce(
                lambda _, m: translator.translate_for(m[1], *m[0]), msgs * rounds, None
            )
        print(f"translations {len(msgs) * rounds}")
        engine.dispose()


if __name__ == "__main__":
    main()

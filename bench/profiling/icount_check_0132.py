"""Decision 0132: the instructions of the resource check alone (``check_resources``, the
walk over every produced resource) on the bench's ORU translations, exact to the message.

    MC_CG=1 PYTHONHASHSEED=0 valgrind --tool=callgrind --instr-atstart=no \\
        --collect-atstart=no --toggle-collect=functools_reduce --callgrind-out-file=OUT \\
        .venv/bin/python bench/profiling/icount_check_0132.py [ROUNDS] [COPIES]

As ``icount_translate_0126.py``: the bench input translated once (uncounted), then the
check of each translation's resources run ROUNDS times inside ``functools.reduce``, where
callgrind counts. Instructions a message: ``Collected`` / (ROUNDS x COPIES x 30). The
check's memo of passed values (``checks._PASSED``) is warm, as it is in a running adapter.
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
from adapter.pipeline.checks import check_resources
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
        produced = [translator.translate_for(raw, *fs).resources for fs, raw in msgs]
        for resources in produced:  # warm-up (the memo of passed values)
            check_resources(resources)
        if os.environ.get("MC_CG"):
            command = ["callgrind_control", "-i", "on", str(os.getpid())]
            subprocess.run(command, check=False, capture_output=True)
        with settled():
            functools.reduce(lambda _, r: check_resources(r), produced * rounds, None)
        print(f"checks {len(produced) * rounds}")
        engine.dispose()


if __name__ == "__main__":
    main()

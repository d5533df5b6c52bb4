"""Decision 0112: the CPU of the translation alone for the bench's ORU lab messages
(``Translator.translate_for``: read, map, unread report, resource check), ms a message.

    .venv/bin/python bench/profiling/translate_cpu_0112.py [ROUNDS] [COPIES] [profile]

The input is what bench_ingest's bulk rows ingest (``load_fixtures`` / ``make_input``); each
round translates every message once and prints the process CPU a message (median at the
end). ``profile``: one more round under cProfile, the top 35 functions by own and by
cumulative time. ROUNDS 0 runs the warm-up only: under valgrind, the instructions of 0 and
of 2 rounds differ by the translation of 2 x COPIES x 30 messages (decision 0112).
"""

from __future__ import annotations

import cProfile
import logging
import os
import pstats
import statistics
import sys
import tempfile
import time
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
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    copies = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    profile = len(sys.argv) > 3 and sys.argv[3] == "profile"
    with tempfile.TemporaryDirectory() as tmp:
        settings = routed_settings(Path(tmp))
        engine = make_engine(f"sqlite:///{tmp}/t.db")
        consortium = load_consortium(settings.config)
        fixtures = load_fixtures(consortium)
        pipeline = make_pipeline(settings, consortium, session_factory(engine))
        translator = pipeline.translator
        sources = {s.id: (f, s) for f in consortium.facilities for s in f.sources}
        msgs = [(sources[sid], raw) for sid, raw in make_input(fixtures, copies, "t.", None)]

        def run() -> None:
            for (facility, source), raw in msgs:
                translator.translate_for(raw, facility, source)

        run()  # warm-up
        figures = []
        for r in range(rounds):
            with settled():
                start = time.process_time()
                run()
                ms = 1000 * (time.process_time() - start) / len(msgs)
            figures.append(ms)
            print(f"round {r}: {ms:.3f} ms/msg (load {os.getloadavg()[0]:.1f})", flush=True)
        if figures:
            print(f"median {statistics.median(figures):.3f} ms/msg over {len(msgs)} messages")
        if profile:
            prof = cProfile.Profile()
            prof.runcall(run)
            stats = pstats.Stats(prof)
            stats.sort_stats("tottime").print_stats(35)
            stats.sort_stats("cumulative").print_stats(35)
        engine.dispose()


if __name__ == "__main__":
    main()

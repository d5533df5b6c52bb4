"""The drain's CPU per message with one translation worker (decision 0069): ORU messages
received (kept on receipt), then drained in batches of 100 in this process; the drain
thread's CPU, the process pool's threads' CPU and the worker's, per message.

    .venv/bin/python bench/drain_cpu.py [COPIES]   (30 fixtures x COPIES messages)
"""

import logging
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path.cwd() / "bench"))
sys.path.insert(0, str(Path.cwd()))
from bench_ingest import load_fixtures, make_input, routed_settings
from bulk_wall import _stat_cpu, threads_cpu

from adapter.consortium import load_consortium
from adapter.pipeline import Receipt
from adapter.pipeline import drain as drain_module
from adapter.runtime import make_pipeline
from adapter.store import make_engine, migrate, session_factory


def main():
    logging.disable(logging.WARNING)
    copies = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    with tempfile.TemporaryDirectory() as tmp:
        settings = routed_settings(Path(tmp))
        consortium = load_consortium(settings.config)
        fixtures = load_fixtures(consortium)
        engine = make_engine(f"sqlite:///{Path(tmp) / 'd.db'}")
        migrate(engine)
        pipeline = make_pipeline(settings, consortium, session_factory(engine))
        with pipeline.translation_workers(1):
            for label, n in (("warm", 1), ("run", copies)):
                msgs = make_input(fixtures, n, f"{label}.", None)
                for source, raw in msgs:
                    pipeline.receive(raw, Receipt(source, "http"))
                pool = pipeline.translation_pool
                pids = pool.pids()
                w0 = sum(_stat_cpu(f"/proc/{p}/stat") for p in pids)
                m0, o0 = threads_cpu()
                start = time.perf_counter()
                done = drain_module.drain(pipeline)
                wall = time.perf_counter() - start
                m1, o1 = threads_cpu()
                pids = pool.pids()
                w1 = sum(_stat_cpu(f"/proc/{p}/stat") for p in pids)
                k = 1000 / done
                if label == "run":
                    print(
                        f"drained {done}: wall {wall * k:.2f} ms/msg; main thread CPU "
                        f"{(m1 - m0) * k:.2f}, pool threads CPU {(o1 - o0) * k:.2f}, "
                        f"worker CPU {(w1 - w0) * k:.2f}; load {os.getloadavg()[0]:.1f}"
                    )
        engine.dispose()


if __name__ == "__main__":
    main()

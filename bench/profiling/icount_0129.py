"""Decision 0129: the receive side of ``POST /ingest`` in one process, for instruction
counts (load-independent).

    PYTHONHASHSEED=0 ICOUNT_TOGGLE=1 valgrind --tool=callgrind --instr-atstart=no \\
        --callgrind-out-file=/dev/null \\
        .venv/bin/python bench/profiling/icount_0129.py COUNT [CLIENTS]

Run from a worktree's root (its ``adapter`` is imported). The real application
(``create_app``) under uvicorn with the server's own settings (``adapter/api/server.py``:
the guarded h11 protocol, no uvicorn access line), in this process's main thread, on a
fresh SQLite file, its drain off (``ADAPTER_INGEST_DRAIN=false``: the receive side only:
HTTP, middlewares, FastAPI, the receipts' transactions). A warm-up of 30 documents, then
COUNT documents posted with ``Prefer: respond-async`` by CLIENTS (default 1) client threads
of this process, each one kept-alive connection written by hand (bench_post_ingest.py's
``_raw_client``). Each answer must be 202. The receive side's instructions are the
difference between a run with COUNT and one with 0: ``(I(COUNT) - I(0)) / COUNT`` a
document (``ICOUNT_TOGGLE``: callgrind counts from the end of the warm-up on, so start-up
runs uninstrumented, several times faster). With one client the receipts' groups are one
document each, as in every run.

Without valgrind it prints the process's CPU a document (not load-independent);
``ICOUNT_PROFILE=FILE`` writes a cProfile (thread CPU) of the event loop's thread (uvicorn,
the middlewares, FastAPI) after the warm-up.
"""

from __future__ import annotations

import asyncio
import cProfile
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path.cwd() / "bench"))
sys.path.insert(0, str(Path.cwd()))


def main() -> None:
    count = int(sys.argv[1])
    clients = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.update(
            {
                "ADAPTER_DATABASE_URL": f"sqlite:///{tmp}/icount.db",
                "ADAPTER_BASE_URL": "http://127.0.0.1/fhir",
                "ADAPTER_AUTH": "off",
                "ADAPTER_INGEST_DRAIN": "false",
                "ADAPTER_LOG_LEVEL": "INFO",
            }
        )
        import uvicorn
        from bench_delivery import Patients, messages
        from bench_ingest import load_fixtures
        from bench_post_ingest import _raw_client

        from adapter.api.app import create_app
        from adapter.api.server import HttpLimits, guarded_protocol
        from adapter.commands.common import configure_logs
        from adapter.consortium import load_consortium
        from adapter.settings import Settings

        settings = Settings()
        configure_logs(settings)
        # the access line and the others go to stderr as in the server; not to the terminal
        for handler in logging.getLogger().handlers:
            if hasattr(handler, "setStream"):
                handler.setStream(open(os.devnull, "w"))  # noqa: SIM115
        fixtures = load_fixtures(load_consortium(settings.config))
        patients = Patients(spread_births=True)
        warm = messages(fixtures, 1, "warm.", patients)
        copies = -(-count // len(fixtures)) if count else 0
        items = messages(fixtures, copies, "run.", patients)[:count] if count else []
        app = create_app(settings)
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=0,
            log_config=None,
            access_log=False,
            http=guarded_protocol(HttpLimits.from_settings(settings)),
            lifespan="on",
        )
        server = uvicorn.Server(config)
        done = threading.Event()
        failures: list[str] = []

        def post() -> None:
            while not server.started:
                time.sleep(0.01)
            port = server.servers[0].sockets[0].getsockname()[1]
            url = f"http://127.0.0.1:{port}/ingest"
            prefer = {"Prefer": "respond-async"}
            lock = threading.Lock()
            latencies: list[float] = []
            _raw_client(url, warm, prefer, latencies, failures, lock)
            if profile is not None:  # the event loop's thread, from here on
                loop.call_soon_threadsafe(profile.enable)
            if os.environ.get("ICOUNT_TOGGLE"):  # valgrind --instr-atstart=no: count from here
                subprocess.run(["callgrind_control", "-i", "on", str(os.getpid())], check=True)
            started = time.process_time()
            parts = [items[n::clients] for n in range(clients)]
            threads = [
                threading.Thread(
                    target=_raw_client, args=(url, p, prefer, latencies, failures, lock)
                )
                for p in parts
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            if count:
                spent = (time.process_time() - started) * 1000 / count
                print(f"{count} documents, {clients} client(s): {spent:.2f} ms CPU a document")
            server.should_exit = True
            done.set()

        # ICOUNT_PROFILE=FILE: a cProfile of the event loop's thread after the warm-up
        asked = os.environ.get("ICOUNT_PROFILE")
        profile = cProfile.Profile(time.thread_time_ns, 1e-9) if asked else None
        loop = asyncio.new_event_loop()
        threading.Thread(target=post, daemon=True).start()
        loop.run_until_complete(server.serve())
        if profile is not None:
            profile.disable()
            profile.dump_stats(os.environ["ICOUNT_PROFILE"])
        if failures:
            raise SystemExit(f"{len(failures)} failed, first: {failures[0]}")


if __name__ == "__main__":
    main()

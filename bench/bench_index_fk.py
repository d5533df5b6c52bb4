"""What search_index's foreign key to resource costs PostgreSQL's backend in bulk ingest
(decision 0060): the same unique lab reports stored through ``Pipeline.ingest_many``
(batches of 100, unique patients), into a fresh schema with the constraint (as migration
0018 made it) and one without (migration 0021), rounds taking turns.

    .venv/bin/python bench/bench_index_fk.py [--copies 8] [--rounds 3] [--pg URL]

Measured: the CPU time of the pipeline's PostgreSQL backends (``/proc/<pid>/stat`` of every
backend the engine connected to, found by ``pg_backend_pid()``; the server must run on
this machine) and of this process, per message, and the search-index rows written per
message. CPU time, not wall time: the load of a shared machine moves it less (the load
average is printed with each round).
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_delivery import Patients
from bench_ingest import (
    DEFAULT_PG,
    bulk_ingest,
    load_fixtures,
    make_input,
    postgres_engine,
    routed_settings,
)
from sqlalchemy import event, text

from adapter.consortium import load_consortium
from adapter.runtime import make_pipeline
from adapter.store import migrate
from adapter.store import session_factory as make_session_factory
from adapter.store.models import FK_INDEX_RESOURCE

_TICK = os.sysconf("SC_CLK_TCK")
ADD_KEY = text(
    f"ALTER TABLE search_index ADD CONSTRAINT {FK_INDEX_RESOURCE} FOREIGN KEY (resource_key)"
    " REFERENCES resource (resource_key) ON DELETE CASCADE"
)


def cpu_seconds(pid: int) -> float:
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime + stime


def one_round(url: str, settings: Any, fixtures: Any, copies: int, key: bool, tag: str) -> dict:
    made = postgres_engine(url)
    assert not isinstance(made, str), made
    engine, drop = made
    backends: set[int] = set()

    @event.listens_for(engine, "connect")
    def _pid(dbapi_connection: Any, _record: Any) -> None:
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            backends.add(cursor.fetchone()[0])

    try:
        migrate(engine)  # head: without the constraint
        if key:
            with engine.begin() as conn:
                conn.execute(ADD_KEY)
        consortium = load_consortium(settings.config)
        pipeline = make_pipeline(settings, consortium, make_session_factory(engine))
        patients = Patients(spread_births=True)
        bulk = bulk_ingest(pipeline, 100)
        bulk(make_input(fixtures, 1, f"w{tag}", patients))  # warm-up
        messages = make_input(fixtures, copies, f"m{tag}", patients)
        with engine.connect() as conn:
            rows_before = conn.execute(text("SELECT count(*) FROM search_index")).scalar_one()
        server = {pid: cpu_seconds(pid) for pid in backends}
        own = time.process_time()
        bulk(messages)
        own = time.process_time() - own
        spent = sum(cpu_seconds(pid) - server.get(pid, 0.0) for pid in backends)
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT count(*) FROM search_index")).scalar_one()
        n = len(messages)
        return {
            "server_ms": spent * 1000 / n,
            "own_ms": own * 1000 / n,
            "rows": (rows - rows_before) / n,
            "n": n,
            "load": os.getloadavg()[0],
        }
    finally:
        drop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--copies", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--pg", default=DEFAULT_PG)
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    results: dict[bool, list[dict]] = {True: [], False: []}
    with tempfile.TemporaryDirectory() as tmp:
        settings = routed_settings(Path(tmp))
        fixtures = load_fixtures(load_consortium(settings.config))
        for r in range(args.rounds):
            for key in (True, False) if r % 2 == 0 else (False, True):
                got = one_round(args.pg, settings, fixtures, args.copies, key, f"{r}{key:d}")
                results[key].append(got)
                print(
                    f"round {r + 1}, {'with' if key else 'without'} the key: {got['n']} messages, "
                    f"backend {got['server_ms']:.2f} ms/message, this process "
                    f"{got['own_ms']:.2f} ms/message, {got['rows']:.1f} index rows/message, "
                    f"load average {got['load']:.1f}",
                    flush=True,
                )
    med = statistics.median
    with_, without = results[True], results[False]
    saved = med(r["server_ms"] for r in with_) - med(r["server_ms"] for r in without)
    rows = med(r["rows"] for r in with_)
    print(
        f"medians: backend {med(r['server_ms'] for r in with_):.2f} ms/message with the key, "
        f"{med(r['server_ms'] for r in without):.2f} without ({saved:+.2f} ms, "
        f"{saved * 1000 / rows:+.1f} us per index row of {rows:.0f}); this process "
        f"{med(r['own_ms'] for r in with_):.2f} / {med(r['own_ms'] for r in without):.2f} ms"
    )


if __name__ == "__main__":
    main()

"""Several name / address criteria read together or each apart (decision 0134), in one
process on one schema of ``bench/pg_strings_latency.py``: ``_joint`` as built, then
replaced by one that reads nothing together (each criterion as before 0134), alternated
twice; the best of 7 wall times a search (the least disturbed by other load) and the
statements it sent.

    .venv/bin/python bench/profiling/joint_combos_0134.py SCHEMA
"""

from __future__ import annotations

import importlib
import sys
import time
from pathlib import Path
from typing import Any

from sqlalchemy import event

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from adapter.store import make_engine, session_factory
from bench.bench_search import DEFAULT_PG
from bench.pg_schema import scratch_schema
from bench.pg_strings_latency import _run

S = importlib.import_module("adapter.store.search")
joint = S._joint
COMBOS = [
    [("family", "张"), ("given", "伟"), ("address-city", "青山县")],
    [("family", "张"), ("address-city", "青山县")],
    [("family", "张"), ("given", "秀")],
    [("name:contains", "伟"), ("address-city", "青山县")],
    [("address", "柳河"), ("family", "张")],
    [("name", "张伟"), ("address", "柳河")],
    [("family", "范"), ("address-city", "石门县"), ("_total", "accurate")],
    [("family", "张"), ("given", "伟"), ("_sort", "given")],
]


def main(schema_name: str) -> None:
    with scratch_schema(DEFAULT_PG, "str", keep=schema_name) as schema:
        engine = make_engine(schema.url)
        sent = [0]

        @event.listens_for(engine, "before_cursor_execute")
        def _count(*_: Any) -> None:
            sent[0] += 1

        with session_factory(engine)() as session:
            for params in COMBOS:
                out = []
                for mode in ("apart", "together", "apart", "together"):
                    S._joint = joint if mode == "together" else (lambda rtype, criteria: [])
                    found = _run(session, params)  # warm-up
                    session.rollback()
                    best = 1e9
                    for _ in range(7):
                        sent[0] = 0
                        started = time.perf_counter()
                        found = _run(session, params)
                        session.rollback()
                        best = min(best, (time.perf_counter() - started) * 1000)
                    out.append(f"{mode} {best:6.1f} ms {sent[0]} st")
                label = " & ".join(f"{k}={v}" for k, v in params)
                print(f"{label:48} {' | '.join(out)}  found {found}")
        S._joint = joint
        engine.dispose()


if __name__ == "__main__":
    main(sys.argv[1])

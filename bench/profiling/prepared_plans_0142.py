"""Decision 0142: do a search's statements get generic plans in one long transaction?

Runs 40 searches of one parameter (``--param``, default ``name``) with 10 values in turn in
ONE transaction of one connection (no rollback between: psycopg prepares a text it has
seen 5 times, and the server plans a prepared statement generic after 5 custom plans),
then prints ``pg_prepared_statements``' generic and custom plan counts per statement and
the mean ms a search by tenth. ``--mode force_custom_plan`` sets ``plan_cache_mode`` first
(to compare). Needs a schema ``bench/pg_strings_latency.py`` loaded.

    .venv/bin/python bench/profiling/prepared_plans_0142.py --schema S [--param name:exact]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from sqlalchemy import text

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from adapter.store import make_engine, session_factory  # noqa: E402
from bench.bench_search import DEFAULT_PG  # noqa: E402
from bench.pg_schema import scratch_schema  # noqa: E402
from bench.pg_strings_latency import _run  # noqa: E402

VALUES = ("张伟", "李秀", "王", "张", "范", "刘敏", "陈", "zhang", "欧阳", "杨")
_PLANS = text(
    "SELECT generic_plans, custom_plans, length(statement), left(statement, 50)"
    " FROM pg_prepared_statements ORDER BY length(statement) DESC"
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--schema", required=True)
    ap.add_argument("--param", default="name")
    ap.add_argument("--mode", choices=("auto", "force_custom_plan"), default="auto")
    ap.add_argument("--pg", default=os.environ.get("BENCH_PG", DEFAULT_PG))
    args = ap.parse_args()
    with scratch_schema(args.pg, "str", keep=args.schema) as schema:
        engine = make_engine(schema.url)
        with session_factory(engine)() as session:
            session.execute(text(f"SET plan_cache_mode = {args.mode}"))
            times = []
            for value in VALUES * 4:
                start = time.perf_counter()
                _run(session, [(args.param, value)])
                times.append((time.perf_counter() - start) * 1000)
            for generic, custom, length, head in session.execute(_PLANS):
                print(f"generic {generic:3} custom {custom:3} {length:5} B {head!r}")
            tenths = [round(sum(times[i : i + 10]) / 10, 1) for i in range(0, 40, 10)]
            print(f"{args.mode}: mean ms a search by tenth {tenths}, load {os.getloadavg()[0]:.1f}")
            session.rollback()
        engine.dispose()


if __name__ == "__main__":
    main()

"""bench_night's night on PostgreSQL as several `adapter sync` processes at once, one per
group of sources.

    .venv/bin/python bench/bench_night_groups.py                      # 50,000 documents, 2 groups
    .venv/bin/python bench/bench_night_groups.py --documents 5000 --groups "A,B;C"  # source ids

Why: a single `adapter sync` on PostgreSQL is one sequence of Python work and round trips;
in the whole 50,000-document night it kept the 2-core machine at a load of 1.4-1.5
(bench/README.md, bench_night). The night's sources are independent (one per facility and
document kind), a run is per set of sources (`adapter sync --source ...`), and PostgreSQL's
row locks already serialise what concurrent writers share (the patient index, the merge),
as they do for concurrent `POST /ingest` clients. Sources not named in any group form a
group of their own.

Prints each process's end, exit code, CPU and peak RSS, the wall time until the last one
ended, every postgres process's CPU, and each run's report totals (received, gaps).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from auto_analyze import AutoAnalyze
from bench_delivery import process_cpu
from bench_ingest import DEFAULT_PG, postgres_engine
from bench_night import DAY, GOAL_MINUTES, ROOT, generate, write_config

from adapter.store import migrate

LABS = "county-lis-lab-report,liuhe-lis-lab-report,shiqiao-lis-lab-report,std-hl7v2-lab-report"


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--documents", type=int, default=50000)
    ap.add_argument(
        "--groups",
        default=LABS,
        help="groups of source ids, ';' between groups, ',' within one (default: the lab "
        "sources in one group; the referral and discharge sources, named in none, a second)",
    )
    ap.add_argument("--pg", default=DEFAULT_PG)
    ap.add_argument("--seed", type=int, default=14)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        night = generate(tmp / "night", args.documents, args.seed, 0.3)
        config = write_config(tmp, night, 50)
        every = [s["id"] for s in night.sources]
        groups = [[s for s in g.split(",") if s] for g in args.groups.split(";") if g]
        unknown = {s for g in groups for s in g} - set(every)
        if unknown:
            raise SystemExit(f"unknown sources {sorted(unknown)}; the night's: {every}")
        rest = [s for s in every if all(s not in g for g in groups)]
        groups += [rest] if rest else []
        made = postgres_engine(args.pg)
        if isinstance(made, str):
            raise SystemExit(f"PostgreSQL {made}")
        engine, drop = made
        try:
            migrate(engine)
            env = {k: v for k, v in os.environ.items() if not k.startswith("ADAPTER_")}
            env.update(
                {
                    "ADAPTER_DATABASE_URL": engine.url.render_as_string(hide_password=False),
                    "ADAPTER_CONFIG": str(config),
                    "PYTHONPATH": str(ROOT),
                    "ADAPTER_LOG_LEVEL": "WARNING",
                }
            )
            print(f"night of {DAY}: {night.files} documents {night.counts}; groups: {groups}")
            load_before = os.getloadavg()[0]
            postgres_before = process_cpu(lambda _pid, name: name == "postgres")
            started = time.perf_counter()
            running: dict[int, int] = {}
            with AutoAnalyze(engine, 10.0):
                for number, group in enumerate(groups):
                    command = [sys.executable, "-m", "adapter.cli", "sync"]
                    command += ["--day", DAY.isoformat(), "--json", "--quiet"]
                    for source in group:
                        command += ["--source", source]
                    with (tmp / f"out{number}").open("wb") as out:
                        process = subprocess.Popen(
                            command, env=env, stdout=out, stderr=subprocess.DEVNULL, cwd=ROOT
                        )
                    running[process.pid] = number
                while running:
                    pid, status, usage = os.wait4(-1, 0)
                    number = running.pop(pid, None)
                    if number is None:
                        continue
                    print(
                        f"   group {number}: ended after {time.perf_counter() - started:.1f} s, "
                        f"exit {os.waitstatus_to_exitcode(status)}, CPU "
                        f"{usage.ru_utime + usage.ru_stime:.1f} s, peak RSS "
                        f"{usage.ru_maxrss / 1024:.0f} MB"
                    )
            wall = time.perf_counter() - started
            postgres = process_cpu(lambda _pid, name: name == "postgres") - postgres_before
            received = gaps = 0
            for number in range(len(groups)):
                out = (tmp / f"out{number}").read_text(encoding="utf-8")
                report = json.loads(out[out.index("{") :])
                received += report["totals"]["received"]
                gaps += report["totals"]["gaps"]
            met = "met" if wall / 60 < GOAL_MINUTES and gaps == 0 else "NOT met"
            print(
                f"   {len(groups)} processes: {args.documents} documents in {wall:.1f} s "
                f"({wall / 60:.2f} min), {args.documents / wall:.1f} documents/s; every "
                f"postgres process {postgres:.1f} s of CPU; received {received}, gaps {gaps}; "
                f"goal < {GOAL_MINUTES:g} min: {met}; load average {load_before:.1f} before, "
                f"{os.getloadavg()[0]:.1f} after"
            )
        finally:
            drop()


if __name__ == "__main__":
    main()

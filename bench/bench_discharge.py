"""Benchmark: the night's discharge-summary phase alone (issue 14, decision 0044 amended
2026-12-05): bench_night's generator writing only WS/T 500.53 discharge CDA documents (or
the kinds ``--kinds`` names), ingested by the real ``adapter sync`` of one or more source
trees, taking turns (A/B/A/B), on a SQLite file and/or a PostgreSQL schema.

    .venv/bin/python bench/bench_discharge.py --documents 1500 --tree ../discharge2-base --tree .
    .venv/bin/python bench/bench_discharge.py --kinds referral,referral-cda,discharge --no-pg

Per run: CPU per document of the sync process (``RUSAGE_SELF``) and of its translation
workers (``RUSAGE_CHILDREN``, reaped at exit), SQL statements per document (a
``before_cursor_execute`` listener on every Engine of the sync process: a count that does
not depend on load), on PostgreSQL the CPU of every ``postgres`` process meanwhile (an upper
bound: other users' included), wall time and the load average. ``--profile DIR`` runs
each sync under cProfile timed by the process's CPU clock instead (``DIR/<tree>-<db>.prof``;
its CPU is then not comparable); ``--workers 0`` translates in the sync process (to profile
the translation too). ``--dump DIR`` writes every stored row and the report of each
PostgreSQL run (``DIR/<tree>-postgresql-<turn>.rows`` / ``.report``): base and branch
compare equal with ``cmp`` when their output is the same. ``BENCH_PG_PREFIX``
names the schemas (``<prefix>_<hex>``) on a shared server.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import store_statements
from bench_delivery import process_cpu
from bench_ingest import DEFAULT_PG, postgres_engine
from bench_night import DAY, generate, write_config

from adapter.store import make_engine, migrate

# Run in the sync process: count statements on every Engine, write the counts and the
# process's own and its reaped children's CPU at exit, then run the real command.
WRAPPER = """
import atexit, collections, json, resource, sys
from sqlalchemy import event
from sqlalchemy.engine import Engine
counted = [0]
kinds = collections.Counter()
def count(_conn, _cursor, statement, *_a, **_k):
    counted[0] += 1
    kinds[" ".join(statement.split())[:110]] += 1
event.listen(Engine, "before_cursor_execute", count)
def done(path=sys.argv[1]):
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(path, "w") as out:
        json.dump({"statements": counted[0], "cpu": own.ru_utime + own.ru_stime,
                   "workers": kids.ru_utime + kids.ru_stime,
                   "top": kinds.most_common(40)}, out)
atexit.register(done)
sys.argv = ["adapter", *sys.argv[2:]]
from adapter.cli import app
app()
"""

# ``--profile``: cProfile timed by the process's CPU clock, written at exit
PROFILER = """
import atexit, cProfile, sys, time
profiler = cProfile.Profile(time.process_time)
def done(path=sys.argv[1]):
    profiler.disable()
    profiler.dump_stats(path)
atexit.register(done)
sys.argv = ["adapter", *sys.argv[2:]]
profiler.enable()
from adapter.cli import app
app()
"""


def run(
    tree: Path, url: str, config: Path, tmp: Path, profile: Path | None, workers: int | None = None
) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADAPTER_")}
    if workers is not None:  # 0: translate in the sync process (to profile translation)
        env["ADAPTER_TRANSLATE_WORKERS"] = str(workers)
    env.update(
        {
            "ADAPTER_DATABASE_URL": url,
            "ADAPTER_CONFIG": str(config),
            "PYTHONPATH": str(tree),
            "ADAPTER_LOG_LEVEL": "WARNING",
        }
    )
    counts = tmp / "counts.json"
    command = [sys.executable]
    if profile:  # CPU time, not wall time: the host is shared (waits are not costs)
        command += ["-c", PROFILER, str(profile)]
    else:
        command += ["-c", WRAPPER, str(counts)]
    command += ["sync", "--day", DAY.isoformat(), "--json", "--quiet"]
    postgres_before = process_cpu(lambda _pid, name: name == "postgres")
    load = os.getloadavg()[0]
    start = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=tree, capture_output=True, text=True)
    spent = time.perf_counter() - start
    report = json.loads(done.stdout[done.stdout.index("{") :]) if "{" in done.stdout else None
    if report is None:
        raise SystemExit(f"sync printed no report ({done.returncode}):\n{done.stderr[-3000:]}")
    found = json.loads(counts.read_text()) if counts.exists() and not profile else {}
    counts.unlink(missing_ok=True)
    found.update(
        seconds=spent,
        load=load,
        postgres=process_cpu(lambda _pid, name: name == "postgres") - postgres_before,
        report=report,
        received=report["totals"]["received"],
        gaps=report["totals"]["gaps"],
        code=done.returncode,
    )
    return found


DUMPED = (
    *store_statements._DUMPED,
    "referral_ledger",
    "referral_overdue",
    "sync_item",
)
_RUN_FIELDS = re.compile(r'"(id|run_id|[a-z_]*_ms|seconds|[a-z_]*_at)": [^,\n]*')


def dump(engine: Any, stem: Path, found: dict[str, Any]) -> None:
    """The run's stored rows (``<stem>.rows``) and its report without the run's id and
    times (``<stem>.report``): two runs of the same night compare equal (``cmp``)."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    store_statements._dump(engine, stem.with_suffix(".rows"), DUMPED)
    report = json.dumps(found.get("report"), ensure_ascii=False, sort_keys=True, indent=1)
    stem.with_suffix(".report").write_text(_RUN_FIELDS.sub(r'"\1": -', report) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--documents", type=int, default=1500)
    ap.add_argument("--kinds", default="discharge", help="bench_night KINDS, comma-separated")
    ap.add_argument("--tree", action="append", help="source trees to compare (default: this)")
    ap.add_argument("--rounds", type=int, default=2, help="turns of every tree (2)")
    ap.add_argument("--seed", type=int, default=14)
    ap.add_argument("--pg", default=DEFAULT_PG)
    ap.add_argument("--no-pg", action="store_true")
    ap.add_argument("--no-sqlite", action="store_true")
    ap.add_argument("--statements", action="store_true", help="print the commonest statements")
    ap.add_argument("--profile", help="a folder: run each sync under cProfile instead")
    ap.add_argument(
        "--dump",
        help="a folder: write every stored row (store_statements._dump, and the referral "
        "ledger, worklist and sync ledger) and the report of each PostgreSQL run there",
    )
    ap.add_argument(
        "--workers", type=int, help="translation workers (the setting; 0: in the sync process)"
    )
    args = ap.parse_args()
    trees = [Path(t).resolve() for t in args.tree or [Path(__file__).resolve().parent.parent]]
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        night = generate(
            tmp / "night", args.documents, args.seed, 0.3, tuple(args.kinds.split(","))
        )
        config = write_config(tmp, night, 50)
        n = night.files
        print(f"{n} documents: {night.counts}; {len(trees)} trees, {args.rounds} rounds")
        databases = ["sqlite"] * (not args.no_sqlite) + ["postgresql"] * (not args.no_pg)
        for db in databases:
            for turn in range(args.rounds):
                for tree in trees:
                    if db == "sqlite":
                        path = tmp / "night.db"
                        path.unlink(missing_ok=True)
                        url = f"sqlite:///{path}"
                        engine = make_engine(url)
                        migrate(engine)
                        engine.dispose()
                        drop = None
                    else:
                        made = postgres_engine(args.pg)
                        if isinstance(made, str):
                            print(f"PostgreSQL skipped: {made}")
                            break
                        engine, drop = made
                        migrate(engine)
                        url = engine.url.render_as_string(hide_password=False)
                    profile = (
                        Path(args.profile) / f"{tree.name}-{db}-{turn}.prof"
                        if args.profile
                        else None
                    )
                    try:
                        r = run(tree, url, config, tmp, profile, args.workers)
                        if args.dump and drop:
                            dump(engine, Path(args.dump) / f"{tree.name}-{db}-{turn}", r)
                    finally:
                        if drop:
                            drop()
                    print(
                        f"{db:10} {tree.name:16} turn {turn}: {r['seconds']:.1f} s, "
                        f"{n / r['seconds'] * 60:.0f} docs/min; CPU/doc sync "
                        f"{r.get('cpu', 0) * 1000 / n:.2f} ms, workers "
                        f"{r.get('workers', 0) * 1000 / n:.2f} ms"
                        + (
                            f", postgres {r['postgres'] * 1000 / n:.2f} ms"
                            if db != "sqlite"
                            else ""
                        )
                        + f"; statements/doc {r.get('statements', 0) / n:.1f}; received "
                        f"{r['received']} gaps {r['gaps']} exit {r['code']}; load {r['load']:.1f}",
                        flush=True,
                    )
                    if args.statements:
                        for statement, times in r.get("top", []):
                            print(f"    {times / n:6.2f}/doc  {statement}")


if __name__ == "__main__":
    main()

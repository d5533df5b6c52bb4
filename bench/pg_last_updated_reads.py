"""Reads that use the resource's last-change index, timed on a kept PostgreSQL schema
(decision 0089: the index without ``id`` on PostgreSQL).

    BENCH_KEEP_PG=1 .venv/bin/python bench/bench_ingest.py --slices 3 --slice-size 300 \\
        --unique-patients --spread-births --no-sqlite      # prints "kept PostgreSQL schema S"
    .venv/bin/python bench/pg_last_updated_reads.py S [S2 ...] [--rounds 200] [--pg URL]

Several schemas (e.g. base and branch, each filled by its own code): every query runs on
each in turn, in a shuffled order, within one process, so that the host's drift falls on
all alike; the same code reads them all. Each query goes through the store
(``adapter.store.search.find``, ``read_history_page``), 50 a page, ``--rounds`` times;
prints p50 / p95 in milliseconds, the indexes of the first statement's plan, and the
page's ids. Read-only: the schemas are left as they are.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import event, select
from sqlalchemy.engine import make_url

from adapter.fhir.search_query import parse_search
from adapter.store import make_engine, session_factory
from adapter.store.history import HistoryQuery, read_history_page
from adapter.store.models import Resource
from adapter.store.search import find

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("schemas", nargs="+", help="one schema, or several compared in turn")
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--pg", default=DEFAULT_PG)
    args = ap.parse_args()
    prepared = [_prepare(args.pg, schema) for schema in args.schemas]
    rng = random.Random(5)
    labels = list(prepared[0].queries)
    sessions = [p.factory() for p in prepared]
    try:
        for _ in range(args.rounds):  # each query on every schema in turn, shuffled
            rng.shuffle(labels)
            for label in labels:
                order = list(range(len(prepared)))
                rng.shuffle(order)
                for n in order:
                    started = time.perf_counter()
                    prepared[n].queries[label](sessions[n])
                    prepared[n].times[label].append((time.perf_counter() - started) * 1000)
    finally:
        for session in sessions:
            session.close()
    for p in prepared:
        print(f"schema {p.schema}: {args.rounds} rounds, milliseconds per page of 50")
        print(f"{'query':44} {'p50':>7} {'p95':>7}  indexes of the first statement's plan")
        for label in labels_in_order(p):
            ms = sorted(p.times[label])
            p95 = ms[int(len(ms) * 0.95) - 1]
            print(f"{label:44} {statistics.median(ms):7.2f} {p95:7.2f}  {p.plans[label]}")
        for label, ids in p.answers.items():
            print(f"answer {label}: {len(ids)} ids, first {ids[:2]}")
        p.engine.dispose()


def labels_in_order(p: Prepared) -> list[str]:
    return list(p.queries)


@dataclass
class Prepared:
    schema: str
    engine: Any
    factory: Any
    queries: dict[str, Any]
    plans: dict[str, str] = field(default_factory=dict)
    answers: dict[str, list[str]] = field(default_factory=dict)
    times: dict[str, list[float]] = field(default_factory=dict)


def _prepare(pg: str, schema: str) -> Prepared:
    """The schema's queries (its own middle instant), each run once: the answer, the plan."""
    url = make_url(pg).update_query_dict({"options": f"-csearch_path={schema}"})
    engine = make_engine(url.render_as_string(hide_password=False))
    factory = session_factory(engine)
    with factory() as session:
        newest = session.scalar(
            select(Resource.last_updated).order_by(Resource.last_updated.desc()).limit(1)
        )
        oldest = session.scalar(
            select(Resource.last_updated).order_by(Resource.last_updated).limit(1)
        )
    assert newest is not None and oldest is not None
    middle = oldest + (newest - oldest) / 2
    stamp = middle.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    searches: list[tuple[str, list[tuple[str, str]]]] = [
        ("Observation (default order)", []),
        ("Observation?_sort=-_lastUpdated", [("_sort", "-_lastUpdated")]),
        ("Observation?_sort=_lastUpdated", [("_sort", "_lastUpdated")]),
        ("Observation?_lastUpdated=ge<middle>", [("_lastUpdated", f"ge{stamp}")]),
        ("Patient?_sort=-_lastUpdated", [("_sort", "-_lastUpdated")]),
    ]
    queries: dict[str, Any] = {}
    for label, params in searches:
        rtype = label.split("?")[0].split(" ")[0]
        parsed = parse_search(rtype, [*params, ("_count", "50")])

        def run(session: Any, rtype: str = rtype, parsed: Any = parsed) -> list[str]:
            page = find(session, [rtype], parsed.criteria, count=50, sort=parsed.sort)
            return [b["id"] for b in page.bodies]

        queries[label] = run
    for label, since in (
        ("Observation/_history", None),
        ("Observation/_history?_since=<middle>", middle),
    ):

        def history(session: Any, since: Any = since) -> list[str]:
            _, rows = read_history_page(
                session, HistoryQuery(resource_type="Observation", since=since, count=50)
            )
            return [f"{r.id}/{r.version_id}" for r in rows]

        queries[label] = history
    p = Prepared(schema, engine, factory, queries, times={label: [] for label in queries})
    with factory() as session:
        for label, run in queries.items():  # warm, the answer and the plan's indexes
            seen: list[Any] = []

            def grab(
                conn: Any,
                cursor: Any,
                statement: str,
                params: Any,
                context: Any,
                many: bool,
                seen: list[Any] = seen,
            ) -> None:
                if statement.lstrip().upper().startswith("SELECT") and not seen:
                    seen.append(statement)
                    seen.append(params)

            event.listen(engine, "before_cursor_execute", grab)
            try:
                p.answers[label] = run(session)
            finally:
                event.remove(engine, "before_cursor_execute", grab)
            plan = ""
            if seen:
                explained = session.connection().exec_driver_sql("EXPLAIN " + seen[0], seen[1])
                plan = "\n".join(r[0] for r in explained)
            p.plans[label] = ", ".join(sorted(set(_indexes(plan)))) or "-"
    return p


def _indexes(plan: str) -> list[str]:
    out = []
    for line in plan.splitlines():
        for word in (
            "Index Scan Backward using ",
            "Index Scan using ",
            "Index Only Scan Backward using ",
            "Index Only Scan using ",
            "Bitmap Index Scan on ",
        ):
            if word in line:
                out.append(line.split(word)[1].split(" ")[0])
        if "Incremental Sort" in line:
            out.append("(incremental sort)")
        elif "Sort " in line.strip()[:8] or line.strip().startswith("->  Sort"):
            out.append("(sort)")
    return out


if __name__ == "__main__":
    main()

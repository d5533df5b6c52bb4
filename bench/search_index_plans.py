"""Which indexes of ``search_index`` the store's queries use on PostgreSQL (decision 0042),
or on SQLite (``--sqlite``, decision 0085).

    .venv/bin/python bench/search_index_plans.py [--pg URL] [--observations 20000]
    .venv/bin/python bench/search_index_plans.py --sqlite [--observations 20000] [--timings]

Loads Observations (bench_search.py's generator) and Patients into a scratch schema,
ANALYZEs, then runs the store's own code for each query shape (``find`` for searches,
sorts, ``:missing``, ``:not``, chains, ``_has``; ``included`` for ``_include`` /
``_revinclude``; the recognition query's code rows; the delete of a changed resource's
rows), records every statement it sends that reads ``search_index``, and prints the
indexes PostgreSQL's plan uses for it (``EXPLAIN``, the statement's own parameters). Then
the same with ``enable_seqscan = off`` (which index the planner *can* use when the table
is large). At the end: each index of ``search_index`` and the shapes that used it; an index
no shape uses is a candidate to drop. ``--timings``: each statement's execution, best of 3.

``--sqlite``: the same data stored by the store itself (``save_resources``, 1,000 resources
a transaction) in a temporary SQLite file, not analysed (as a store runs), ``EXPLAIN QUERY
PLAN`` of each statement (a WITHOUT ROWID table's own key is ``PRIMARY KEY of <name>``, a
full read ``(scan <name>)``), and with ``--timings`` each statement run to its last row:
the process's CPU ms (SQLite runs in it), best of 5.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import psycopg
from bench_search import DEFAULT_PG, observation
from pg_schema import ResourceCopy, analyze, scratch_schema
from sqlalchemy import Engine, delete, event, text

from adapter.fhir.search_query import parse_search
from adapter.recognition.query import _coded_rows
from adapter.store import make_engine, migrate, save_resources, session_factory
from adapter.store.models import SearchIndex
from adapter.store.search import find
from adapter.store.search_include import included

SEARCHES: list[tuple[str, str, list[tuple[str, str]]]] = [
    ("patient + _sort=-date", "Observation", [("patient", "Patient/p3"), ("_sort", "-date")]),
    ("subject (shares patient's rows)", "Observation", [("subject", "Patient/p3")]),
    ("code", "Observation", [("code", "1003-3")]),
    ("code system|code", "Observation", [("code", "http://loinc.org|1003-3")]),
    ("combo-code (code rows)", "Observation", [("combo-code", "1003-3")]),
    ("status:not", "Observation", [("status:not", "final")]),
    ("value-quantity gt", "Observation", [("value-quantity", "gt190")]),
    ("value-quantity:missing", "Observation", [("value-quantity:missing", "true")]),
    ("date ge", "Observation", [("date", "ge2025-12-01")]),
    ("date lt", "Observation", [("date", "lt2023-01-05")]),
    ("date eq (a day)", "Observation", [("date", "2024-03-01")]),
    ("_sort=date (type)", "Observation", [("_sort", "date")]),
    ("_sort=-date (type)", "Observation", [("_sort", "-date")]),
    ("_sort=-value-quantity", "Observation", [("_sort", "-value-quantity")]),
    ("chain patient.name", "Observation", [("patient.name", "王五3")]),
    ("Patient name prefix", "Patient", [("name", "王五3")]),
    ("Patient name:contains", "Patient", [("name:contains", "五3")]),
    ("Patient identifier", "Patient", [("identifier", "urn:oid:2.16.156|ID3")]),
    ("Patient birthdate", "Patient", [("birthdate", "1970-01-04")]),
    ("Patient _profile (uri)", "Patient", [("_profile", "http://example.org/p")]),
    ("Patient _has:Observation", "Patient", [("_has:Observation:patient:code", "1003-3")]),
    ("patient (id only)", "Observation", [("patient", "p3")]),
    ("subject:Patient", "Observation", [("subject:Patient", "p3")]),
    ("patient, two", "Observation", [("patient", "Patient/p3,Patient/p4")]),
    ("patient:missing", "Observation", [("patient:missing", "true")]),
    ("code + _sort=patient", "Observation", [("code", "1003-3"), ("_sort", "patient")]),
    ("_sort=-patient (type)", "Observation", [("_sort", "-patient")]),
]


def patient(n: int) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": f"p{n}",
        "meta": {"profile": ["http://example.org/p"] if n % 100 == 0 else []},
        "identifier": [{"system": "urn:oid:2.16.156", "value": f"ID{n}"}],
        "name": [{"family": "王", "given": [f"五{n}"]}],
        "birthDate": f"1970-01-{1 + n % 28:02d}",
    }


def load(conn: psycopg.Connection, observations: int) -> None:
    rng = random.Random(7)
    patients = max(1, observations // 100)
    rows = ResourceCopy()
    for n in range(patients):
        rows.add(patient(n), last_updated="2026-01-01T00:00:00+00:00", patient_key=None)
    for i in range(observations):
        body = observation(i, rng.randrange(patients), rng)
        rows.add(
            body, last_updated=body["meta"]["lastUpdated"], patient_key=body["subject"]["reference"]
        )
    rows.flush(conn)
    analyze(conn)


def _executed(plan: Any) -> float:
    plan = json.loads(plan) if isinstance(plan, str) else plan
    return float(plan[0]["Execution Time"])


def index_names(plan: dict[str, Any]) -> set[str]:
    found = {plan["Index Name"]} if "Index Name" in plan else set()
    for child in plan.get("Plans", []):
        found |= index_names(child)
    return found


def run_shapes(engine: Engine) -> list[tuple[str, str, Any]]:
    """Every shape run by the store's own code: (shape, statement, parameters) of each
    statement it sent that reads ``search_index``."""
    captured: list[tuple[str, str, Any]] = []
    current = {"shape": ""}

    @event.listens_for(engine, "before_cursor_execute")
    def capture(conn, cursor, statement, parameters, context, executemany):
        if "search_index" in statement and not statement.lstrip().startswith("EXPLAIN"):
            captured.append((current["shape"], statement, parameters))

    factory = session_factory(engine)
    with factory() as session:
        for label, rtype, params in SEARCHES:
            current["shape"] = label
            parsed = parse_search(rtype, [*params, ("_count", "50")])
            find(session, [rtype], parsed.criteria, count=50, sort=parsed.sort, total="accurate")
        current["shape"] = "(the page for _include: code)"
        page = find(
            session,
            ["Observation"],
            parse_search("Observation", [("code", "1003-3")]).criteria,
            count=50,
        )
        current["shape"] = "_include=Observation:patient"
        included(
            session,
            page.bodies,
            parse_search("Observation", [("_include", "Observation:patient")]).includes,
        )
        current["shape"] = "(the page for _revinclude: name)"
        pats = find(
            session,
            ["Patient"],
            parse_search("Patient", [("name", "王五3")]).criteria,
            count=50,
        )
        current["shape"] = "_revinclude=Observation:patient"
        included(
            session,
            pats.bodies,
            parse_search("Patient", [("_revinclude", "Observation:patient")]).includes,
        )
        current["shape"] = "recognition: a person's code rows"
        _coded_rows(
            session,
            "Observation",
            list(range(1, 31)),  # resource keys
            {("http://loinc.org", "1003-3"): None},
        )  # type: ignore[dict-item]
        current["shape"] = "delete a changed resource's rows"
        si = SearchIndex.__table__
        session.execute(delete(si).where(si.c.resource_key.in_([1, 2])))
        session.rollback()
    event.remove(engine, "before_cursor_execute", capture)  # the timings run them again
    return captured


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--pg", default=DEFAULT_PG)
    ap.add_argument("--observations", type=int, default=20_000)
    ap.add_argument(
        "--timings",
        action="store_true",
        help="also EXPLAIN ANALYZE each statement (default settings): execution ms, best of 3",
    )
    ap.add_argument("--sqlite", action="store_true", help="SQLite instead of PostgreSQL")
    args = ap.parse_args()
    if args.sqlite:
        sqlite_plans(args.observations, args.timings)
        return
    with scratch_schema(args.pg, "plans") as schema:
        engine = make_engine(schema.url)
        migrate(engine)
        with schema.connect() as conn:
            load(conn, args.observations)
        captured = run_shapes(engine)
        used: dict[str, dict[str, set[str]]] = {
            "default": defaultdict(set),
            "seqscan off": defaultdict(set),
        }
        with engine.connect() as conn:
            all_indexes = [
                row[0]
                for row in conn.execute(
                    text(
                        "SELECT indexname FROM pg_indexes "
                        "WHERE schemaname = current_schema() AND tablename = 'search_index'"
                    )
                )
            ]
            for setting, sql in (
                ("default", "SET enable_seqscan = on"),
                ("seqscan off", "SET enable_seqscan = off"),
            ):
                conn.exec_driver_sql(sql)
                print(f"\n== plans, {setting}")
                for shape, statement, parameters in captured:
                    plan = conn.exec_driver_sql(
                        "EXPLAIN (FORMAT JSON) " + statement, parameters
                    ).scalar_one()
                    plan = json.loads(plan) if isinstance(plan, str) else plan
                    names = sorted(index_names(plan[0]["Plan"]))
                    for name in names:
                        used[setting][name].add(shape)
                    mine = ", ".join(n for n in names if "search_index" in n)
                    print(f"   {shape:40} {mine or '(no search_index index)'}")
                conn.rollback()
            if args.timings:
                print("\n== execution ms (EXPLAIN ANALYZE, best of 3, default settings)")
                conn.exec_driver_sql("SET enable_seqscan = on")
                for shape, statement, parameters in captured:
                    if statement.lstrip().upper().startswith("DELETE"):
                        continue
                    best = min(
                        _executed(
                            conn.exec_driver_sql(
                                "EXPLAIN (ANALYZE, FORMAT JSON) " + statement, parameters
                            ).scalar_one()
                        )
                        for _ in range(3)
                    )
                    print(f"   {shape:40} {best:8.2f}")
                conn.rollback()
        print("\n== indexes of search_index and the shapes that use them (default / seqscan off)")
        for name in sorted(all_indexes):
            a, b = used["default"].get(name, set()), used["seqscan off"].get(name, set())
            shapes = "; ".join(sorted(a | b))[:160] or "UNUSED"
            print(f"   {name:32} {len(a):3} / {len(b):3}   {shapes}")
        engine.dispose()


def load_sqlite(engine: Engine, observations: int) -> None:
    """bench_search's Observations and their Patients (the patients first), stored by the
    store, 1,000 resources a transaction."""
    rng = random.Random(7)
    patients = max(1, observations // 100)
    bodies = [patient(n) for n in range(patients)]
    bodies += [observation(i, rng.randrange(patients), rng) for i in range(observations)]
    factory = session_factory(engine)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    for start in range(0, len(bodies), 1000):
        with factory.begin() as session:
            save_resources(session, bodies[start : start + 1000], message_id=None, now=now)
    # no ANALYZE: a SQLite store has no statistics unless an operator runs it


_USING = re.compile(r"USING (?:COVERING )?(?:INDEX (\w+)|(PRIMARY KEY))")


def sqlite_indexes(detail: str) -> set[str]:
    """The b-trees of ``search_index`` an ``EXPLAIN QUERY PLAN`` line reads: its indexes,
    a WITHOUT ROWID table's own key (``PRIMARY KEY of <table or alias>``), or a scan."""
    if detail.startswith("SCAN") and "USING" not in detail:
        return {f"(scan {detail.split()[1]})"}
    found = _USING.search(detail)
    if found is None:
        return set()
    if found.group(1):
        return {found.group(1)} if found.group(1).startswith("ix_search_index") else set()
    return {f"PRIMARY KEY of {detail.split()[1]}"}


def sqlite_plans(observations: int, timings: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'plans.db'}")
        migrate(engine)
        started = time.perf_counter()
        load_sqlite(engine, observations)
        print(f"loaded {observations} Observations in {time.perf_counter() - started:.0f} s")
        captured = run_shapes(engine)
        used: dict[str, set[str]] = defaultdict(set)
        with engine.connect() as conn:
            print("\n== plans (EXPLAIN QUERY PLAN)")
            for shape, statement, parameters in captured:
                plan = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).all()
                names: set[str] = set()
                for row in plan:
                    names |= sqlite_indexes(row[-1])
                for name in names:
                    used[name].add(shape)
                print(f"   {shape:40} {', '.join(sorted(names)) or '(no search_index b-tree)'}")
            if timings:
                print("\n== CPU ms of the process (each statement to its last row, best of 5)")
                for shape, statement, parameters in captured:
                    if statement.lstrip().upper().startswith("DELETE"):
                        continue
                    best = float("inf")
                    for _ in range(5):
                        cpu = time.process_time()
                        conn.exec_driver_sql(statement, parameters).all()
                        best = min(best, time.process_time() - cpu)
                    print(f"   {shape:40} {best * 1000:8.2f}")
            conn.rollback()
        print("\n== b-trees of search_index and the shapes that use them")
        for name in sorted(used):
            print(f"   {name:32} {len(used[name]):3}   {'; '.join(sorted(used[name]))[:160]}")
        engine.dispose()


if __name__ == "__main__":
    main()

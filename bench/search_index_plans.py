"""Which indexes of ``search_index`` the store's queries use on PostgreSQL (decision 0042).

    .venv/bin/python bench/search_index_plans.py [--pg URL] [--observations 20000] [--timings]
    .venv/bin/python bench/search_index_plans.py --sqlite FILE [--observations 20000]

Loads Observations (bench_search.py's generator) and Patients into a scratch schema,
ANALYZEs, then runs the store's own code for each query shape (``find`` for searches,
sorts, ``:missing``, ``:not``, chains, ``_has``; ``included`` for ``_include`` /
``_revinclude``; the recognition query's code rows; the delete of a changed resource's
rows), records every statement it sends that reads ``search_index``, and prints the
indexes PostgreSQL's plan uses for it (``EXPLAIN``, the statement's own parameters). Then
the same with ``enable_seqscan = off`` (which index the planner *can* use when the table
is large). At the end: each index of ``search_index`` and the shapes that used it; an index
no shape uses is a candidate to drop. ``--timings``: also each statement's execution
time (EXPLAIN ANALYZE, best of 3).

``--sqlite FILE``: the same searches on SQLite: the data saved through the store
(``save_resources``, the patients first) into FILE (made once and kept: a later run, e.g.
of another tree, needs its own FILE), then each statement's ``EXPLAIN QUERY PLAN`` and its
time (run and fetched, best of 3, ms).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import psycopg
from bench_search import DEFAULT_PG, observation
from pg_schema import ResourceCopy, analyze, scratch_schema
from sqlalchemy import Engine, delete, event, func, select, text
from sqlalchemy.orm import Session

from adapter.fhir.search_query import parse_search
from adapter.recognition.query import _code_condition, _coded_rows
from adapter.store import make_engine, migrate, save_resources, session_factory
from adapter.store.index_params import rows_of
from adapter.store.models import Resource, SearchIndex
from adapter.store.search import find
from adapter.store.search_include import included
from adapter.store.systems import known_ids

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
    ("_sort=patient (type)", "Observation", [("_sort", "patient")]),
    ("date eq + _sort=patient", "Observation", [("date", "2024-03-01"), ("_sort", "patient")]),
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


def load_sqlite(engine: Engine, observations: int) -> None:
    """The same resources as ``load``, saved through the store (500 per transaction)."""
    rng = random.Random(7)
    patients = max(1, observations // 100)
    bodies = [patient(n) for n in range(patients)]
    bodies += [observation(i, rng.randrange(patients), rng) for i in range(observations)]
    factory = session_factory(engine)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for n in range(0, len(bodies), 500):
        with factory.begin() as session:
            now = start + timedelta(seconds=n)
            save_resources(session, bodies[n : n + 500], message_id=None, now=now)
    # no ANALYZE: the adapter never runs it on SQLite, so its planner has no statistics


def _captured(statement: str) -> bool:
    """A statement of the store that reads search_index (not the collation check that
    names the table once per engine, adapter/store/collation.py)."""
    if statement.lstrip().startswith("EXPLAIN") or "attcollation" in statement:
        return False
    return "search_index" in statement


def run_searches(engine: Engine, capture: list[tuple[str, str, Any]]) -> None:
    """Each search of ``SEARCHES`` through the store; ``capture`` gets the statements that
    read search_index, with the shape's label."""
    current = {"shape": ""}

    @event.listens_for(engine, "before_cursor_execute")
    def _capture(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if _captured(statement):
            capture.append((current["shape"], statement, parameters))

    with session_factory(engine)() as session:
        for label, rtype, params in SEARCHES:
            current["shape"] = label
            parsed = parse_search(rtype, [*params, ("_count", "50")])
            find(session, [rtype], parsed.criteria, count=50, sort=parsed.sort, total="accurate")
        other_shapes(session, current)
    event.remove(engine, "before_cursor_execute", _capture)


def other_shapes(session: Session, current: dict[str, str]) -> None:
    """The shapes besides ``SEARCHES``: ``_include`` / ``_revinclude``, the recognition
    query's code rows, the delete of a changed resource's rows (rolled back)."""
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
    current["shape"] = "recognition (PostgreSQL): a person's code rows"
    _coded_rows(
        session,
        "Observation",
        list(range(1, 31)),  # resource keys
        {("http://loinc.org", "1003-3"): None},
    )  # type: ignore[dict-item]
    if session.get_bind().dialect.name == "sqlite":
        current["shape"] = "recognition (SQLite): a person's codes"
        r = Resource.__table__
        person = select(r.c.patient_key).where(r.c.resource_type == "Observation").limit(1)
        mine = select(r.c.resource_key).where(
            r.c.resource_type == "Observation", r.c.patient_key == person.scalar_subquery()
        )
        loinc = known_ids(session, {"http://loinc.org"})["http://loinc.org"]
        si = SearchIndex.__table__
        session.execute(  # the statement of adapter/recognition/query.py's SQLite path
            select(si.c.resource_key)
            .distinct()
            .where(
                rows_of(si, "Observation", ("code",), "token"),
                si.c.resource_key.in_(list(session.execute(mine).scalars())),
                _code_condition([(loinc, "1003-3"), (loinc, "2345-7")]),
            )
        ).all()
    current["shape"] = "delete a changed resource's rows"
    si = SearchIndex.__table__
    session.execute(delete(si).where(si.c.resource_key.in_([1, 2])))
    session.rollback()


def sqlite_main(path: str, observations: int) -> None:
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine)
    with engine.connect() as conn:
        stored = conn.execute(select(func.count()).select_from(Resource.__table__)).scalar_one()
    if not stored:
        load_sqlite(engine, observations)
    captured: list[tuple[str, str, Any]] = []
    run_searches(engine, captured)
    print(f"== SQLite {path}: plans (EXPLAIN QUERY PLAN) and ms (run and fetched, best of 3)")
    with engine.connect() as conn:
        for shape, statement, parameters in captured:
            if statement.lstrip().upper().startswith("DELETE"):
                continue
            plan = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).all()
            best = float("inf")
            for _ in range(3):
                began = time.perf_counter()
                conn.exec_driver_sql(statement, parameters).all()
                best = min(best, time.perf_counter() - began)
            print(f"   {shape:40} {best * 1000:8.2f}")
            for row in plan:
                print(f"        {row[-1]}")
    engine.dispose()


def _executed(plan: Any) -> float:
    plan = json.loads(plan) if isinstance(plan, str) else plan
    return float(plan[0]["Execution Time"])


def index_names(plan: dict[str, Any]) -> set[str]:
    found = {plan["Index Name"]} if "Index Name" in plan else set()
    for child in plan.get("Plans", []):
        found |= index_names(child)
    return found


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--pg", default=DEFAULT_PG)
    ap.add_argument("--observations", type=int, default=20_000)
    ap.add_argument("--sqlite", metavar="FILE", help="run on SQLite in FILE (made once, kept)")
    ap.add_argument(
        "--timings",
        action="store_true",
        help="also EXPLAIN ANALYZE each statement (default settings): execution ms, best of 3",
    )
    ap.add_argument("--prefix", default="plans", help="the scratch schema's name prefix")
    args = ap.parse_args()
    if args.sqlite:
        sqlite_main(args.sqlite, args.observations)
        return
    with scratch_schema(args.pg, args.prefix) as schema:
        engine = make_engine(schema.url)
        migrate(engine)
        with schema.connect() as conn:
            load(conn, args.observations)
        captured: list[tuple[str, str, Any]] = []
        current = {"shape": ""}

        @event.listens_for(engine, "before_cursor_execute")
        def capture(conn, cursor, statement, parameters, context, executemany):
            if _captured(statement):
                captured.append((current["shape"], statement, parameters))

        factory = session_factory(engine)
        with factory() as session:
            for label, rtype, params in SEARCHES:
                current["shape"] = label
                parsed = parse_search(rtype, [*params, ("_count", "50")])
                find(
                    session, [rtype], parsed.criteria, count=50, sort=parsed.sort, total="accurate"
                )
            other_shapes(session, current)
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


if __name__ == "__main__":
    main()

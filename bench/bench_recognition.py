"""Benchmark: the ordering-time recognition query (``$recognisable`` for two items) for a
person with five years of results, on PostgreSQL, against hand-written SQL (the floor).

    .venv/bin/python bench/bench_recognition.py [--persons 300] [--per-person 1000]
        [--observations N] [--filler-per-person 50] [--queries 200] [--pg URL]

Data: ``--persons`` people (the ones asked), each with ``--per-person`` Observations spread
evenly over the five years before the question, cycling through ten catalogue items of
fixtures/recognition.yaml (local code of 石桥 plus LOINC, as the mappings write them), sent
by 石桥镇卫生院; with ``--observations N``, other persons' results (``--filler-per-person``
each, same shapes) up to N Observations in all. Not through the pipeline: one Observation of
each shape and its real index rows are built in Python and copied server-side by PostgreSQL
(bench/pg_fill.py), in time order with the persons interleaved (a person's results on
different pages, as in a store filled over years), the indexes built after the load, into
a schema made for the run and migrated like the adapter's, then ANALYZEd.

Rows printed (milliseconds, p50 / p95 over ``--queries`` random persons, asked at
2026-12-01 for WBC and glucose: 2 x per-person / 10 results judged each time):
  api     GET /fhir/Patient/{id}/$recognisable?code=... through the real FastAPI app
  store   adapter.recognition.query.ask alone (find, read and judge the results)
  floor   one hand-written SQL that returns the same results' bodies: the person's rows
          (patient_key), each probed for an item's code row (LATERAL ... LIMIT 1, which
          keeps PostgreSQL per person: a plain EXISTS was hashed over every row of the
          codes, 157 / 243 ms p50 / p95 at 200,000 Observations), nothing judged
and the encounter-start question (every item, no code given) through ``ask``.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fastapi.testclient import TestClient
from sqlalchemy import event, text

from adapter.api.app import create_app
from adapter.consortium import load_consortium
from adapter.recognition.catalogue import load_catalogue
from adapter.recognition.query import Question, ask
from adapter.settings import DEFAULT_CONSORTIUM, Settings
from adapter.store import make_engine, migrate, session_factory
from bench.bench_search import pct
from bench.pg_fill import Group, Shape, fill_observations, indexes_dropped
from bench.pg_schema import Schema, analyze, scratch_schema

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
LOCAL = "https://qingshan.example.cn/fhir/sid/shiqiao/lab-item"
# (local code, LOINC) of ten catalogue items
ITEMS = [
    ("WBC", "6690-2"),
    ("RBC", "789-8"),
    ("HGB", "718-7"),
    ("PLT", "777-3"),
    ("GLU", "14749-6"),
    ("ALT", "1742-6"),
    ("CREA", "14682-9"),
    ("UA", "14933-6"),
    ("TC", "14647-2"),
    ("TG", "14927-8"),
]
ASKED = ["QS-JY-001", "QS-JY-101"]  # WBC and glucose
AT = datetime(2026, 12, 1, tzinfo=UTC)
FIVE_YEARS = timedelta(days=5 * 365)
T0 = AT - FIVE_YEARS  # five years of results before the question (all of them prior)


def body(n: int, oid: str, patient: str, when: str) -> dict[str, Any]:
    """An Observation of the ``n % 10``-th item, as the mappings write it."""
    local, loinc = ITEMS[n % len(ITEMS)]
    return {
        "resourceType": "Observation",
        "id": oid,
        "meta": {"versionId": "1", "lastUpdated": when},
        "status": "final",
        "code": {
            "coding": [
                {"system": LOCAL, "code": local},
                {"system": "http://loinc.org", "code": loinc},
            ]
        },
        "subject": {"reference": f"Patient/{patient}"},
        "effectiveDateTime": when,
        "valueQuantity": {"value": 5.0, "unit": "mmol/L"},
    }


SHAPES = [Shape(partial(body, n)) for n in range(len(ITEMS))]


FLOOR = """
SELECT r.id, r.body FROM resource r
CROSS JOIN LATERAL (
  SELECT 1 FROM search_index s
  WHERE s.resource_key = r.resource_key AND s.kind = 1 AND s.param_id = (
      SELECT param_id FROM search_param
      WHERE resource_type = 'Observation' AND param = 'code' AND kind = 1)
    AND (s.system_id, s.code) IN (
      (%(loinc)s, '6690-2'), (%(loinc)s, '14749-6'),
      (%(local)s, 'WBC'), (%(local)s, 'GLU'))
  LIMIT 1) matched
WHERE r.resource_type = 'Observation' AND r.patient_key = %(key)s AND NOT r.deleted
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--persons", type=int, default=300)
    parser.add_argument("--per-person", type=int, default=1000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument(
        "--observations",
        type=int,
        default=0,
        help="Observations in the store in all (at least persons x per-person): the rest "
        "are other persons' results, generated server-side (bench/pg_fill.py)",
    )
    parser.add_argument(
        "--filler-per-person", type=int, default=50, help="results per other person"
    )
    parser.add_argument("--pg", default=DEFAULT_PG)
    args = parser.parse_args()
    root = Path(__file__).resolve().parent.parent
    consortium = load_consortium(DEFAULT_CONSORTIUM)
    catalogue = load_catalogue(
        root / "fixtures" / "recognition.yaml", {f.id for f in consortium.facilities}
    )
    with scratch_schema(args.pg, "bench_recognition") as schema:
        run(args, consortium, catalogue, schema)


def run(args: argparse.Namespace, consortium: Any, catalogue: Any, schema: Schema) -> None:
    url_text = schema.url
    engine = make_engine(url_text)
    migrate(engine)
    started = time.perf_counter()
    timed = args.persons * args.per_person
    filler = max(0, args.observations - timed)
    groups = [Group("b", args.persons, args.per_person)]
    if filler:
        groups.append(Group("f", filler // args.filler_per_person, args.filler_per_person))
    with schema.connect() as conn:
        with indexes_dropped(conn):
            fill_observations(
                conn,
                SHAPES,
                groups,
                facility_id="shiqiao-township-centre",
                start=T0,
                span_seconds=int(FIVE_YEARS.total_seconds()),
            )
        analyze(conn)
    loaded = time.perf_counter() - started
    load_before = os.getloadavg()
    rng = random.Random(11)
    people = [f"bp{rng.randrange(args.persons)}" for _ in range(args.queries)]
    factory = session_factory(engine)
    rows: dict[str, list[float]] = {"api": [], "store": [], "floor": []}
    encounter: list[float] = []
    # authentication off: the figures measure the query path, as before tokens existed
    app = create_app(Settings(database_url=url_text, auth=False))
    query = "&".join(f"code={c}" for c in ASKED) + "&at=2026-12-01T00:00:00Z"
    with (
        TestClient(app) as client,
        factory() as session,
        schema.connect() as conn,
    ):
        # the systems' search_system ids (decision 0059), known to the floor beforehand
        ids = dict(conn.execute("SELECT system, system_id FROM search_system").fetchall())
        systems = {"loinc": ids.get("http://loinc.org"), "local": ids.get(LOCAL)}
        for warm in people[:20]:
            client.get(f"/fhir/Patient/{warm}/$recognisable?{query}")
        for person in people:
            t = time.perf_counter()
            response = client.get(f"/fhir/Patient/{person}/$recognisable?{query}")
            rows["api"].append((time.perf_counter() - t) * 1000)
            assert response.status_code == 200, response.text
            question = Question(person, AT, codes=ASKED)
            t = time.perf_counter()
            answers = ask(session, catalogue, consortium, question)
            rows["store"].append((time.perf_counter() - t) * 1000)
            session.rollback()
            t = time.perf_counter()
            found = conn.execute(FLOOR, {"key": f"Patient/{person}", **systems}).fetchall()
            rows["floor"].append((time.perf_counter() - t) * 1000)
            judged = sorted(c.reference for a in answers for c in a.candidates)
            assert judged == sorted(f"Observation/{r[0]}" for r in found)
            t = time.perf_counter()
            ask(session, catalogue, consortium, Question(person, AT))
            encounter.append((time.perf_counter() - t) * 1000)
            session.rollback()
    app.state.engine.dispose()
    load_after = os.getloadavg()
    plans = explain(engine, catalogue, consortium, people[0])
    with engine.connect() as c:
        observations = c.execute(
            text("SELECT count(*) FROM resource WHERE resource_type = 'Observation'")
        ).scalar_one()
        index_rows = c.execute(text("SELECT count(*) FROM search_index")).scalar_one()
    engine.dispose()
    print(
        f"\n{observations:,} Observations, {args.persons:,} persons x {args.per_person:,} "
        f"results over 5 years, {index_rows:,} index rows; loaded in {loaded:.0f} s"
    )
    if filler:
        print(f"  of which {filler:,} other persons' ({args.filler_per_person} each, generated)")
    print(
        "load average (1, 5, 15 min) before the queries "
        + " ".join(f"{x:.1f}" for x in load_before)
        + ", after "
        + " ".join(f"{x:.1f}" for x in load_after)
    )
    judged_each = 2 * args.per_person // len(ITEMS)
    print(f"$recognisable for 2 items ({judged_each} results judged), {args.queries} persons")
    print(f"{'':10}{'p50':>8}{'p95':>8}{'p95 / floor':>13}")
    floor95 = pct(rows["floor"])[1]
    for name, samples in rows.items():
        p50, p95 = pct(samples)
        print(f"{name:10}{p50:8.2f}{p95:8.2f}{p95 / floor95:13.1f}")
    p50, p95 = pct(encounter)
    print(f"{'encounter':10}{p50:8.2f}{p95:8.2f}   (store, every item: all results judged)")
    print("\nthe statements of one ordering-time ask, EXPLAIN (ANALYZE, BUFFERS):")
    for line in plans:
        print(line)


def explain(engine: Any, catalogue: Any, consortium: Any, person: str) -> list[str]:
    """The statements ``ask`` runs for one person, each planned and run again under EXPLAIN
    ANALYZE: which index each uses, and how many rows and buffers it touches."""
    captured: list[tuple[str, Any]] = []

    def keep(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            captured.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", keep)
    factory = session_factory(engine)
    with factory() as session:
        ask(session, catalogue, consortium, Question(person, AT, codes=ASKED))
        session.rollback()
    event.remove(engine, "before_cursor_execute", keep)
    lines: list[str] = []
    with engine.connect() as conn:
        for statement, parameters in captured:
            lines.append("-- " + " ".join(statement.split())[:160])
            plan = conn.exec_driver_sql(
                "EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters
            ).scalars()
            lines.extend("   " + _cut(row) for row in plan if _shown(row))
    return lines


def _cut(row: str, width: int = 150) -> str:
    return row if len(row) <= width else row[: width - 5] + " ..."


def _shown(row: str) -> bool:
    """The plan lines that tell how the rows were found and what it cost."""
    words = ("Scan", "Join", "Loop", "Hash", "Buffers", "Execution Time", "Index Cond")
    return any(w in row for w in words)


if __name__ == "__main__":
    main()

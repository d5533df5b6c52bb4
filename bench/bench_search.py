"""Benchmark: a patient's latest results, ``Observation?patient=X&_sort=-date&_count=50``,
on PostgreSQL, against the same answer in hand-written SQL on the same tables (the floor).

    .venv/bin/python bench/bench_search.py [--observations 200000] [--per-patient 100]
                                           [--queries 300] [--pg URL]

Data: ``--observations`` Observations over ``observations / per-patient`` patients (a
Patient row each, loaded first: their results name them by key, decision 0080), each
with an effectiveDateTime spread over three years, a LOINC code out of 20, a value, a
status (one in 50 ``amended``), one in 10 without a value. Resource rows and their real
index rows (``index_values`` + ``index_row``, as the store writes them) are loaded with
COPY into a schema made for the run (migrated like the adapter's), then ANALYZEd.

Rows printed (milliseconds, p50 / p95 over ``--queries`` random patients; for each patient
the five are run in a shuffled order, since the first to ask reads the patient's pages into
PostgreSQL's buffers):
  api     GET through the real FastAPI app (TestClient: routing, parsing, the query,
          the Bundle, JSON, and the audit record of the disclosure, committed before the
          answer: issue 11), total counted as the default does
  api-noaudit  the same GET with the audit writer off (what the query path alone costs;
          not how the adapter runs)
  http    the same GET to a real ``adapter serve`` process (uvicorn) on loopback, over
          one kept-alive connection, as a receiving system sees it (audit on)
  store   adapter.store.search.find alone (page + total)
  floor   the least SQL that gives the same page and total: the patient's index rows
          joined to the resource, ordered by a LATERAL max(date end), LIMIT 50; and a
          count(*) of the patient's rows
and, for the negated forms the issue measured (``status:not=final``,
``value-quantity:missing=true``), the store with the default total and with
``_total=accurate``; a code by system (``code=http://loinc.org|1003-3``, both totals, and
its ``:not``); then the whole type sorted with no criterion (``_sort=-date``,
``_sort=-_lastUpdated``), the first against its own floor (``type floor``: the first 50
rows of the date-end index joined to their resources, which is the same page here, every
Observation having one date). The schema is made for the run and dropped after it
(``bench/pg_schema.py``).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import psycopg
from fastapi.testclient import TestClient
from sqlalchemy import text

from adapter.api.app import create_app
from adapter.audit import writer
from adapter.fhir.search_query import parse_search
from adapter.settings import Settings
from adapter.store import make_engine, migrate, session_factory
from adapter.store.body_codec import unpack
from adapter.store.search import find
from bench.pg_schema import ResourceCopy, Schema, analyze, loaded_rows, scratch_schema
from tests.live.server import LiveServer

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
CODES = [f"{1000 + i}-{i % 10}" for i in range(20)]
T0 = datetime(2023, 1, 1, tzinfo=UTC)


def observation(i: int, patient: int, rng: random.Random) -> dict[str, Any]:
    when = T0 + timedelta(minutes=rng.randrange(3 * 365 * 24 * 60))
    body: dict[str, Any] = {
        "resourceType": "Observation",
        "id": f"o{i}",
        "status": "amended" if i % 50 == 0 else "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "laboratory",
                    }
                ]
            }
        ],
        "code": {"coding": [{"system": "http://loinc.org", "code": rng.choice(CODES)}]},
        "subject": {"reference": f"Patient/p{patient}"},
        "effectiveDateTime": when.isoformat(),
        "meta": {"versionId": "1", "lastUpdated": when.isoformat()},
    }
    if i % 10:
        body["valueQuantity"] = {"value": rng.randrange(50, 200), "unit": "g/L"}
    return body


def load(conn: psycopg.Connection, observations: int, per_patient: int) -> None:
    rng = random.Random(7)
    patients = max(1, observations // per_patient)
    batch = 20_000
    rows = ResourceCopy()
    # the patients first, as a feed stores a patient with (or before) their first result:
    # their results' patient rows name them by key (decision 0080)
    for n in range(patients):
        rows.add(
            {"resourceType": "Patient", "id": f"p{n}"},
            last_updated=T0.isoformat(),
            patient_key=f"Patient/p{n}",
        )
    for start in range(0, observations, batch):
        for i in range(start, min(start + batch, observations)):
            body = observation(i, rng.randrange(patients), rng)
            rows.add(
                body,
                last_updated=body["meta"]["lastUpdated"],
                patient_key=body["subject"]["reference"],
            )
        rows.flush(conn)
    analyze(conn)


def _param(name: str, kind: int) -> str:
    """An Observation parameter's ``param_id`` (decision 0071) and its kind."""
    return (
        "(SELECT param_id FROM search_param WHERE resource_type = 'Observation'"
        f" AND param = '{name}' AND kind = {kind})"
    )


# the patient's resource key (its rows name it by key: decision 0080)
_PATIENT_KEY = "SELECT resource_key FROM resource WHERE resource_type = 'Patient' AND id = %(id)s"
FLOOR_PAGE = f"""
SELECT r.body FROM search_index p
JOIN resource r ON r.resource_key = p.resource_key
LEFT JOIN LATERAL (
  SELECT max(d.value_date_end) AS at FROM search_index d
  WHERE d.resource_key = r.resource_key AND d.kind = 3 AND d.param_id = {_param("date", 3)}) s
  ON true
WHERE p.param_id = {_param("patient", 4)} AND p.kind = 4
  AND p.target_key = ({_PATIENT_KEY}) AND NOT r.deleted
ORDER BY s.at DESC NULLS LAST, r.last_updated DESC, r.id LIMIT 50
"""
FLOOR_COUNT = f"""
SELECT count(*) FROM search_index p
WHERE p.param_id = {_param("patient", 4)} AND p.kind = 4 AND p.target_key = ({_PATIENT_KEY})
"""

# PostgreSQL since migration 0037: the patient's results name it in their arrays (0088)
_PATIENT_TERM = f"ARRAY[({_param('patient', 4)}::bigint << 40) | ({_PATIENT_KEY})]"
FLOOR_PAGE_TERMS = f"""
SELECT r.body FROM search_terms p
JOIN resource r ON r.resource_key = p.resource_key
LEFT JOIN LATERAL (
  SELECT max(d.value_date_end) AS at FROM search_index d
  WHERE d.resource_key = r.resource_key AND d.kind = 3 AND d.param_id = {_param("date", 3)}) s
  ON true
WHERE p.refs && {_PATIENT_TERM} AND NOT r.deleted
ORDER BY s.at DESC NULLS LAST, r.last_updated DESC, r.id LIMIT 50
"""
FLOOR_COUNT_TERMS = f"SELECT count(*) FROM search_terms p WHERE p.refs && {_PATIENT_TERM}"

FLOOR_TYPE_SORT = f"""
SELECT r.body FROM search_index d
JOIN resource r ON r.resource_key = d.resource_key
WHERE d.param_id = {_param("date", 3)} AND d.kind = 3
  AND d.value_date_end IS NOT NULL AND NOT r.deleted
ORDER BY d.value_date_end DESC LIMIT 50
"""


def pct(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[int(0.95 * (len(ordered) - 1))]


EXTRA_FORMS: tuple[tuple[str, list[tuple[str, str]], tuple[str | None, ...]], ...] = (
    ("status:not=final", [("status:not", "final")], (None, "accurate")),
    ("value-quantity:missing=true", [("value-quantity:missing", "true")], (None, "accurate")),
    # by system and code (the interned system of decision 0059: a lookup of its id first)
    ("code=loinc|1003-3", [("code", "http://loinc.org|1003-3")], (None, "accurate")),
    ("code:not=loinc|1003-3", [("code:not", "http://loinc.org|1003-3")], (None,)),
    ("_sort=-date (whole type)", [("_sort", "-date")], (None,)),
    ("_sort=-_lastUpdated (whole type)", [("_sort", "-_lastUpdated")], (None,)),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--observations", type=int, default=200_000)
    parser.add_argument("--per-patient", type=int, default=100)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--pg", default=DEFAULT_PG)
    parser.add_argument(
        "--keep-schema",
        metavar="NAME",
        help="load into schema NAME and keep it; a later run with the same NAME and "
        "--observations reuses the rows (load once, measure when the machine is quiet)",
    )
    args = parser.parse_args()
    with scratch_schema(args.pg, "bench_search", keep=args.keep_schema) as schema:
        run(schema, args)


def run(schema: Schema, args: argparse.Namespace) -> None:
    engine = make_engine(schema.url)
    migrate(engine)
    started = time.perf_counter()
    held = loaded_rows(schema, "Observation")
    if held and held != args.observations:
        sys.exit(f"schema {schema.name} holds {held:,} Observations, not {args.observations:,}")
    if not held:
        with schema.connect() as conn:
            load(conn, args.observations, args.per_patient)
    loaded = time.perf_counter() - started
    patients = max(1, args.observations // args.per_patient)
    rng = random.Random(11)
    refs = [f"p{rng.randrange(patients)}" for _ in range(args.queries)]
    factory = session_factory(engine)
    rows: dict[str, list[float]] = {
        "api": [],
        "api-noaudit": [],
        "http": [],
        "store": [],
        "floor": [],
    }
    # authentication off: the figures measure the query path, as before tokens existed
    app = create_app(Settings(database_url=schema.url, auth=False))
    workdir = Path(tempfile.mkdtemp(prefix="bench_search_"))
    with (
        TestClient(app) as client,
        factory() as session,
        schema.connect() as conn,
        LiveServer(schema.url, workdir) as server,
        httpx.Client(base_url=server.base_url, timeout=30) as http,
    ):
        for warm in refs[:20]:  # warm caches and connections
            client.get(f"/fhir/Observation?patient={warm}&_sort=-date&_count=50")
            http.get(f"/fhir/Observation?patient={warm}&_sort=-date&_count=50")
        order = random.Random(12)
        pages: dict[str, tuple[list[str], int | None]] = {}  # each way's answer, compared
        for ref in refs:
            url = f"/fhir/Observation?patient={ref}&_sort=-date&_count=50"

            def over_http(url: str = url) -> None:
                assert http.get(url).status_code == 200

            def in_process(url: str = url) -> None:
                assert client.get(url).status_code == 200

            def without_audit(url: str = url) -> None:
                writer.set_enabled(False)
                try:
                    assert client.get(url).status_code == 200
                finally:
                    writer.set_enabled(True)

            def store(ref: str = ref) -> None:
                parsed = parse_search(
                    "Observation", [("patient", ref), ("_sort", "-date"), ("_count", "50")]
                )
                page = find(session, ["Observation"], parsed.criteria, count=50, sort=parsed.sort)
                session.rollback()
                pages["store"] = ([b["id"] for b in page.bodies], page.total)

            terms = conn.execute("SELECT to_regclass('search_terms')").fetchone()
            page_sql, count_sql = (
                (FLOOR_PAGE_TERMS, FLOOR_COUNT_TERMS)
                if terms and terms[0]
                else (FLOOR_PAGE, FLOOR_COUNT)
            )

            def floor(ref: str = ref, page_sql: str = page_sql, count_sql: str = count_sql) -> None:
                bodies = conn.execute(page_sql, {"id": ref}).fetchall()
                total = conn.execute(count_sql, {"id": ref}).fetchone()
                pages["floor"] = ([unpack(b[0])["id"] for b in bodies], total and total[0])

            pages.clear()
            runs = [
                ("http", over_http),
                ("api", in_process),
                ("api-noaudit", without_audit),
                ("store", store),
                ("floor", floor),
            ]
            # the first to ask about a patient reads its pages from the OS cache into
            # PostgreSQL's buffers: a shuffled order spreads that cost over every row
            order.shuffle(runs)
            for label, run_one in runs:
                t = time.perf_counter()
                run_one()
                rows[label].append((time.perf_counter() - t) * 1000)
            assert pages["floor"] == pages["store"], ref
        extra: dict[str, tuple[float, int | None]] = {}
        for label, params, modes in EXTRA_FORMS:
            parsed = parse_search("Observation", [*params, ("_count", "50")])
            for mode in modes:
                samples = []
                for _ in range(5):
                    t = time.perf_counter()
                    page = find(
                        session,
                        ["Observation"],
                        parsed.criteria,
                        count=50,
                        sort=parsed.sort,
                        total=mode,
                    )
                    samples.append((time.perf_counter() - t) * 1000)
                    session.rollback()
                extra[f"{label} total={mode or 'default'}"] = (
                    statistics.median(samples),
                    page.total,
                )
        samples = []
        for _ in range(5):
            t = time.perf_counter()
            conn.execute(FLOOR_TYPE_SORT).fetchall()
            samples.append((time.perf_counter() - t) * 1000)
        extra["_sort=-date (whole type) type floor"] = (statistics.median(samples), None)
    app.state.engine.dispose()
    with engine.connect() as c:
        index_rows = c.execute(text("SELECT count(*) FROM search_index")).scalar_one()
    engine.dispose()
    print(
        f"\n{args.observations:,} Observations, {patients:,} patients, "
        f"{index_rows:,} index rows; loaded in {loaded:.0f} s"
    )
    print(f"Observation?patient=X&_sort=-date&_count=50, {args.queries} patients (ms)")
    print(f"{'':12}{'p50':>8}{'p95':>8}{'p95 / floor':>13}")
    floor95 = pct(rows["floor"])[1]
    for name, samples in rows.items():
        p50, p95 = pct(samples)
        print(f"{name:12}{p50:8.2f}{p95:8.2f}{p95 / floor95:13.1f}")
    print("other forms, store, _count=50, median of 5 (ms; Bundle.total)")
    for label, (ms, total) in extra.items():
        print(f"  {label:52}{ms:9.1f}   total {total}")


if __name__ == "__main__":
    main()

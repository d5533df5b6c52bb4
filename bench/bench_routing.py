"""Benchmark: routing decisions per second with 1 million care relationships, against a
true floor (a bare indexed lookup of the same person's rows), on SQLite and PostgreSQL.

    .venv/bin/python bench/bench_routing.py [--rows 1000000] [--decisions 20000]
                                            [--pg URL | --no-pg]

Input: a consortium of 1 county hospital and 29 township centres, each with one enabled
destination (nothing is sent), no static routes: routing by care. ``--rows`` care rows are
written for rows/4 persons, four each: an activity row at the person's home township, a
referral (the township and the county), a registration at the home township; a quarter
of the activity rows have lapsed and 1 person in 50 has a revocation at the county.

Rows printed, per database (the two take turns, in rounds, so load from other processes
hits them alike; the median of the rounds):
  decision  what the pipeline's route step does for one resource: the person's open
            relationships (adapter.store.care.caring: the person's ids, one indexed query,
            revocations applied) and the destinations with their reasons
            (adapter.routing.recipients), for a random person
  floor     ``SELECT id FROM care_relationship WHERE person_id = ?`` for a random person
            in the same session: the least work any routing by care must do
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import Engine, bindparam, insert, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from adapter.consortium import Consortium
from adapter.routing import recipients
from adapter.store import care, make_engine, migrate
from adapter.store import session_factory as make_session_factory
from adapter.store.models import CareRelationship

NOW = datetime(2026, 12, 1, tzinfo=UTC)
TOWNSHIPS = 29


def consortium() -> Consortium:
    facilities = [
        {
            "id": "county",
            "name": "县医院",
            "level": "county",
            "namespace": "https://example.cn/fhir/sid/county",
            "destinations": [{"id": "county-out", "kind": "file", "settings": {"path": "/tmp"}}],
        }
    ]
    for n in range(TOWNSHIPS):
        facilities.append(
            {
                "id": f"t{n}",
                "name": f"乡镇{n}",
                "level": "township",
                "namespace": f"https://example.cn/fhir/sid/t{n}",
                "destinations": [{"id": f"t{n}-out", "kind": "file", "settings": {"path": "/tmp"}}],
            }
        )
    return Consortium.model_validate(
        {"version": 1, "id": "bench", "name": "bench", "facilities": facilities}
    )


def fill(engine: Engine, rows: int) -> int:
    """``rows`` care rows, four per person; returns the number of persons."""
    persons = rows // 4
    table = CareRelationship.__table__
    rng = random.Random(7)
    chunk: list[dict[str, object]] = []
    year = timedelta(days=365)
    with engine.begin() as conn:
        for p in range(persons):
            person = f"p{p:08d}"
            home = f"t{p % TOWNSHIPS}"
            lapsed = rng.random() < 0.25
            start = NOW - timedelta(days=rng.randint(1, 700))
            base = {"actor": None, "note": None, "detail": None}
            chunk.extend(
                [
                    {
                        **base,
                        "person_id": person,
                        "facility_id": home,
                        "source": "activity",
                        "ref": "",
                        "start_at": start,
                        "end_at": (NOW - timedelta(days=1)) if lapsed else start + year,
                        "created_at": start,
                        "updated_at": start,
                    },
                    {
                        **base,
                        "person_id": person,
                        "facility_id": home,
                        "source": "referral",
                        "ref": f"ServiceRequest/r{p}",
                        "start_at": start,
                        "end_at": None,
                        "created_at": start,
                        "updated_at": start,
                    },
                    {
                        **base,
                        "person_id": person,
                        "facility_id": "county",
                        "source": "revocation" if p % 50 == 0 else "referral",
                        "ref": f"ServiceRequest/r{p}",
                        "start_at": start,
                        "end_at": None,
                        "created_at": start,
                        "updated_at": start,
                    },
                    {
                        **base,
                        "person_id": person,
                        "facility_id": home,
                        "source": "registered",
                        "ref": "",
                        "start_at": start,
                        "end_at": None,
                        "created_at": start,
                        "updated_at": start,
                    },
                ]
            )
            if len(chunk) >= 20000:
                conn.execute(insert(table), chunk)
                chunk = []
        if chunk:
            conn.execute(insert(table), chunk)
    return persons


def measure(engine: Engine, the: Consortium, persons: int, decisions: int) -> tuple[float, float]:
    """(decisions/s, floor lookups/s) over the same random persons."""
    factory = make_session_factory(engine)
    rng = random.Random(11)
    chosen = [f"p{rng.randrange(persons):08d}" for _ in range(decisions)]
    floor_sql = text("SELECT id FROM care_relationship WHERE person_id = :p").bindparams(
        bindparam("p", type_=CareRelationship.__table__.c.person_id.type)
    )  # bound as stored (16 bytes on PostgreSQL, decision 0123)
    with factory() as session:
        started = time.perf_counter()
        for person in chosen:
            session.execute(floor_sql, {"p": person}).all()
        floor = decisions / (time.perf_counter() - started)
        started = time.perf_counter()
        sent = 0
        for person in chosen:
            caring = care.caring(session, {person}, NOW)
            sent += len(recipients(the, "county", "Observation", caring))
        decision = decisions / (time.perf_counter() - started)
    assert sent > 0
    return decision, floor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--decisions", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--no-pg", action="store_true")
    args = parser.parse_args()
    the = consortium()
    engines: dict[str, Engine] = {}
    folder = tempfile.TemporaryDirectory()
    engines["SQLite"] = make_engine(f"sqlite:///{folder.name}/bench.db")
    schema = f"bench_routing_{int(time.time())}"
    admin = None
    if not args.no_pg:
        try:
            admin = make_engine(args.pg, poolclass=NullPool)
            with admin.begin() as conn:
                conn.execute(text(f'CREATE SCHEMA "{schema}"'))
            url = make_url(args.pg).update_query_dict({"options": f"-csearch_path={schema}"})
            engines["PostgreSQL"] = make_engine(url.render_as_string(hide_password=False))
        except Exception as exc:  # no server: say so, go on with SQLite
            print(f"PostgreSQL skipped: {type(exc).__name__}")
            admin = None
    try:
        persons = 0
        for name, engine in engines.items():
            migrate(engine)
            started = time.perf_counter()
            persons = fill(engine, args.rows)
            if name == "PostgreSQL":
                with engine.begin() as conn:
                    conn.execute(text("ANALYZE care_relationship"))
            print(
                f"{name}: {args.rows:,} care rows ({persons:,} persons) written in "
                f"{time.perf_counter() - started:.0f} s"
            )
        results: dict[str, list[tuple[float, float]]] = {n: [] for n in engines}
        for _ in range(args.rounds):
            for name, engine in engines.items():
                results[name].append(measure(engine, the, persons, args.decisions))
        print(
            f"\n{'database':12} {'decisions/s':>12} {'floor/s':>10} {'floor/decision':>15}"
            f"  ({args.decisions:,} each, median of {args.rounds} rounds)"
        )
        for name, runs in results.items():
            decision = statistics.median(r[0] for r in runs)
            floor = statistics.median(r[1] for r in runs)
            print(f"{name:12} {decision:12,.0f} {floor:10,.0f} {floor / decision:14.1f}x")
    finally:
        for engine in engines.values():
            engine.dispose()
        if admin is not None:
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            admin.dispose()
        folder.cleanup()


if __name__ == "__main__":
    main()

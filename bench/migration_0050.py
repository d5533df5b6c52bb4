"""Benchmark: migration 0050 (decision 0123) up and down on a PostgreSQL store of
``--rows`` resources (default 500,000: ~60,000 lab messages, eight a patient) and a patient
index of one record a patient (two records a person, two blocking keys and one history row a
record, one care relationship a person); one patient in 50 under a client's id rather than
a UUID. Checks that every converted value reads the same after the upgrade and is the same
text after the downgrade.

    BENCH_PG_PREFIX=<branch> .venv/bin/python bench/migration_0050.py [--pg URL] [--rows N]

(SQLite: 0050 changes nothing there.)
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_ingest import DEFAULT_PG, postgres_engine
from sqlalchemy import Engine, select, text

from adapter.store import migrate
from adapter.store.engine import downgrade
from adapter.store.identity_tables import IdentityHistory, IdentityKey, IdentityRecord
from adapter.store.models import CareRelationship, Resource

BEFORE = "0048"
# patient n: a UUID, or 'p<n>' for one in 50; person: the even record of each pair
_PATIENT = (
    "CASE WHEN ({n}) % 50 = 7 THEN 'p' || ({n}) ELSE CAST(md5(({n})::text) AS uuid)::text END"
)
_FILL = [
    "INSERT INTO resource (resource_type, id, resource_key, version_id, last_updated, deleted,"
    " content_hash, body, patient_key) SELECT 'Observation', md5(x::text), x, 1, now(), false,"
    " decode('00', 'hex'), decode(repeat(md5(x::text), 18), 'hex'),"
    f" 'Patient/' || {_PATIENT.format(n='x / 8')} FROM generate_series(1, :n) AS x",
    "INSERT INTO identity_record (patient_id, person_id, facility_id, link_kind, rule_version,"
    " rule, score, evidence, features, created_at, updated_at)"
    f" SELECT {_PATIENT.format(n='p')}, {_PATIENT.format(n='p - p % 2')}, 'f1', 'auto', 1,"
    " 'r', 1.0, '{}', decode('00', 'hex'), now(), now() FROM generate_series(0, :n / 8) AS p",
    "INSERT INTO identity_key (key_hash, patient_id) SELECT sha256((patient_id || k)::bytea),"
    " patient_id FROM identity_record, generate_series(1, 2) AS k",
    "INSERT INTO identity_history (at, action, patient_id, person_id, actor)"
    " SELECT now(), 'link', patient_id, person_id, 'bench' FROM identity_record",
    "INSERT INTO care_relationship (person_id, facility_id, source, ref, start_at,"
    " created_at, updated_at, detail) SELECT DISTINCT person_id, 'f1', 'activity', '', now(),"
    " now(), now(), '' FROM identity_record",
]
_COLUMNS = (
    (Resource, "patient_key"),
    (IdentityRecord, "patient_id"),
    (IdentityRecord, "person_id"),
    (IdentityKey, "patient_id"),
    (IdentityHistory, "patient_id"),
    (CareRelationship, "person_id"),
)
_TABLES = ("resource", "identity_record", "identity_key", "identity_history", "care_relationship")


def _digest(engine: Engine, *, raw: bool) -> str:
    """Every converted column's values in order: raw (texts before) or read by the models."""
    seen = hashlib.sha256()
    with engine.connect() as conn:
        for model, column in _COLUMNS:
            table = model.__tablename__
            if raw:
                query = text(f"SELECT {column} FROM {table}")
                values = sorted(str(v) for v in conn.execute(query).scalars())
            else:
                values = sorted(
                    str(v) for v in conn.execute(select(model.__table__.c[column])).scalars()
                )
            seen.update("\n".join(values).encode())
    return seen.hexdigest()


def _size(engine: Engine) -> float:
    with engine.connect() as conn:
        sizes = [
            conn.execute(text(f"SELECT pg_total_relation_size('{t}')")).scalar_one()
            for t in _TABLES
        ]
    return sum(sizes) / 1e6


def run(engine: Engine, rows: int) -> None:
    migrate(engine, BEFORE)
    with engine.begin() as conn:
        for statement in _FILL:
            conn.execute(text(statement), {"n": rows})
        for table in _TABLES:
            conn.execute(text(f"ANALYZE {table}"))
    before, size_before = _digest(engine, raw=True), _size(engine)
    start = time.perf_counter()
    migrate(engine, "0050")
    up = time.perf_counter() - start
    read, size_after = _digest(engine, raw=False), _size(engine)
    start = time.perf_counter()
    downgrade(engine, BEFORE)
    down = time.perf_counter() - start
    back = _digest(engine, raw=True)
    print(
        f"PostgreSQL, {rows:,} resources, {rows // 8 + 1:,} patient records: up {up:.1f} s,"
        f" down {down:.1f} s; the five tables with their indexes {size_before:.1f} ->"
        f" {size_after:.1f} MB; read the same after the upgrade: {read == before}, the same"
        f" texts after the downgrade: {back == before}; load {os.getloadavg()[0]:.1f}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--pg", default=DEFAULT_PG)
    ap.add_argument("--rows", type=int, default=500_000)
    args = ap.parse_args()
    made = postgres_engine(args.pg)
    if isinstance(made, str):
        sys.exit(made)
    engine, drop = made
    try:
        run(engine, args.rows)
    finally:
        drop()


if __name__ == "__main__":
    main()

"""Audit searches by patient and entity on one kept PostgreSQL schema, through audit_link's
primary key (0038) and through the hash index of migration 0040 (decision 0092), in turn.

    BENCH_KEEP_PG=1 .venv/bin/python bench/bench_ingest.py ... --no-sqlite   # prints the schema
    .venv/bin/python bench/pg_audit_link_reads.py SCHEMA [--rounds 200]

The schema must be at 0038 (the key). Each round runs every query once with the key, then
(in a transaction that is rolled back at the end: the schema is left as it was) once with the
hash index instead; p50 and p90 of each, in ms. Both forms are timed in one process and
alternated, so the host's drift falls on both alike.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import psycopg

from adapter.store.audit_reference import ENTITY_SQL, entity_of, unpack, versions


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("schema")
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--pg", default="host=127.0.0.1 user=postgres dbname=test")
    args = ap.parse_args()
    conn = psycopg.connect(args.pg, autocommit=False)
    conn.execute(f'SET search_path = "{args.schema}"')
    rows = conn.execute("SELECT kind, reference FROM audit_link").fetchall()
    patients = [bytes(r) for k, r in rows if k == "p"]
    entities = [bytes(r)[:18] for k, r in rows if k == "e" and bytes(r)[:1] == b"\x01"]
    rng = random.Random(7)
    picks = [(rng.choice(patients), rng.choice(entities)) for _ in range(args.rounds)]
    entity = ENTITY_SQL.format(col="reference")

    def queries(hashed: bool) -> list[tuple[str, str, tuple[bytes, ...]]]:
        out = []
        for patient, ent in picks:
            low, high, _ = versions(unpack(ent))
            extra = f" AND ({entity}) = %s" if hashed else ""
            out.append(
                (
                    "patient",
                    "SELECT count(*) FROM audit_record WHERE seq IN (SELECT seq FROM audit_link "
                    f"WHERE kind = 'p' AND reference = %s{extra})",
                    (patient, entity_of(patient)) if hashed else (patient,),
                )
            )
            out.append(
                (
                    "entity, every version",
                    "SELECT count(*) FROM audit_record WHERE seq IN (SELECT seq FROM audit_link "
                    f"WHERE kind = 'e' AND reference >= %s AND reference < %s{extra})",
                    (low, high, entity_of(low)) if hashed else (low, high),
                )
            )
        return out

    timings: dict[tuple[str, bool], list[float]] = {}
    keyed, hashed = queries(False), queries(True)
    conn.execute(f"CREATE INDEX pg_audit_link_reads_entity ON audit_link USING hash (({entity}))")
    for n in range(len(keyed)):
        for form, (name, sql, params) in ((False, keyed[n]), (True, hashed[n])):
            if form:
                conn.execute("SAVEPOINT s")
                conn.execute("ALTER TABLE audit_link DROP CONSTRAINT pk_audit_link")
            started = time.perf_counter()
            conn.execute(sql, params).fetchone()
            timings.setdefault((name, form), []).append((time.perf_counter() - started) * 1e3)
            if form:
                conn.execute("ROLLBACK TO SAVEPOINT s")
    conn.rollback()
    for (name, form), found in sorted(timings.items()):
        found.sort()
        p50, p90 = statistics.median(found), found[int(0.9 * len(found))]
        how = "hash index" if form else "primary key"
        print(f"{name:24} {how:12} p50 {p50:.3f} ms, p90 {p90:.3f} ms")


if __name__ == "__main__":
    main()

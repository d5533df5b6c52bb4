"""A study, not the store: how large would the PostgreSQL search index be if the token and
reference values of a resource were one row of 8-byte hashes with a GIN index, instead of
one row per value with b-tree indexes (issue 14 §2, ≤ 20 KB per lab message)?

It fills a PostgreSQL schema the way ``bench_ingest.py --slices`` does (the real pipeline,
unique patients), keeps it, and builds two prototypes from its ``search_index`` rows:

* ``exact``: one hash per token or reference row (parameter, system, code or target);
* ``searchable``: also a hash of (parameter, code) for a token searched without its
  system, and one "parameter present" hash for ``:missing`` — what the searches would need.

It prints KB per message of today's token and reference rows (their share of the heap,
estimated from the rows' sizes, and their indexes) against each prototype (heap, primary
key, GIN), the time to insert the same values both ways, then drops the schema.

    .venv/bin/python bench/pg_index_arrays.py [--slices 3] [--slice-size 300]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import psycopg

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
TOKEN, REFERENCE = 1, 4  # models.KINDS

EXACT = (
    "hashtextextended(param_id::text || '|' || coalesce(system_id::text, '') || '|' || "
    "coalesce(code, '') || '|' || coalesce(target_key::text, '') || coalesce(reference, ''), 0)"
)
BY_CODE = "hashtextextended(param_id::text || '||' || coalesce(code, ''), 0)"
PRESENT = "hashtextextended(param_id::text || '|present', 0)"


def fill(slices: int, size: int) -> str:
    """Run bench_ingest.py on PostgreSQL only, keeping its schema; the schema's name."""
    out = subprocess.run(
        [sys.executable, "bench/bench_ingest.py", "--slices", str(slices), "--slice-size",
         str(size), "--unique-patients", "--spread-births", "--no-sqlite"],
        env={**os.environ, "BENCH_KEEP_PG": "1"}, capture_output=True, text=True, check=True,
    )  # fmt: skip
    found = re.search(r"kept PostgreSQL schema (\w+)", out.stdout)
    if found is None:
        raise SystemExit(f"bench_ingest.py kept no schema:\n{out.stdout[-2000:]}")
    for line in out.stdout.splitlines():
        if "search_index (with indexes)" in line:
            print("bench_ingest.py:", line.strip())
    return found.group(1)


def study(conn: psycopg.Connection, schema: str) -> None:
    conn.execute(f'SET search_path = "{schema}"')
    n = conn.execute("SELECT count(*) FROM inbound_message").fetchone()[0]

    def kb(sql: str) -> float:
        return float(conn.execute(sql).fetchone()[0] or 0) / n / 1024

    kinds = f"kind IN ({TOKEN}, {REFERENCE})"
    heap_share = kb(
        f"SELECT sum(pg_column_size(s.*) + 4) FROM search_index s WHERE {kinds}"
    )  # +4: the line pointer
    today = {
        "heap (rows' share)": heap_share,
        "ix_search_index_token": kb("SELECT pg_relation_size('ix_search_index_token')"),
        "ix_search_index_target": kb("SELECT pg_relation_size('ix_search_index_target')"),
        "ix_search_index_reference": kb("SELECT pg_relation_size('ix_search_index_reference')"),
        "ix_search_index_resource (share)": kb(
            "SELECT pg_relation_size('ix_search_index_resource') * "
            f"(SELECT count(*) FROM search_index WHERE {kinds})::float8 / "
            "greatest((SELECT count(*) FROM search_index), 1)"
        ),
    }
    print(f"\n{n} messages; today's token and reference rows, KB per message:")
    for name, value in today.items():
        print(f"  {name:40} {value:6.2f}")
    print(f"  {'total':40} {sum(today.values()):6.2f}")

    keys = {
        "exact": f"SELECT resource_key, {EXACT} FROM search_index WHERE {kinds}",
        "searchable": f"SELECT resource_key, {EXACT} FROM search_index WHERE {kinds} "
        f"UNION ALL SELECT resource_key, {BY_CODE} FROM search_index WHERE kind = {TOKEN} "
        f"UNION ALL SELECT resource_key, {PRESENT} FROM search_index WHERE {kinds}",
    }
    for name, hashes in keys.items():
        table = f"proto_{name}"
        conn.execute(
            f"CREATE TABLE {table} AS SELECT resource_key, array_agg(DISTINCT h) AS keys "
            f"FROM ({hashes}) AS x (resource_key, h) GROUP BY resource_key"
        )
        conn.execute(f"ALTER TABLE {table} ADD PRIMARY KEY (resource_key)")
        conn.execute(
            f"CREATE INDEX {table}_gin ON {table} USING gin (keys) WITH (fastupdate = off)"
        )
        parts = {
            "heap": kb(f"SELECT pg_relation_size('{table}')"),
            "primary key": kb(f"SELECT pg_relation_size('{table}_pkey')"),
            "GIN": kb(f"SELECT pg_relation_size('{table}_gin')"),
        }
        total = sum(parts.values())
        detail = ", ".join(f"{k} {v:.2f}" for k, v in parts.items())
        print(f"prototype {name:11}: {total:5.2f} KB per message ({detail}); "
              f"{sum(today.values()) - total:.2f} less than today")  # fmt: skip

    # inserting the same values both ways, into empty tables with their indexes
    conn.execute("CREATE TABLE c_rows (LIKE search_index INCLUDING DEFAULTS)")
    for columns, where in (
        ("param_id, code, system_id, resource_key", f"kind = {TOKEN}"),
        ("param_id, target_key, resource_key", f"kind = {REFERENCE} AND target_key IS NOT NULL"),
        ("param_id, reference, resource_key", f"kind = {REFERENCE} AND reference IS NOT NULL"),
        ("resource_key", None),
    ):
        conn.execute(f"CREATE INDEX ON c_rows ({columns})" + (f" WHERE {where}" if where else ""))
    conn.execute("CREATE TABLE c_keys (resource_key bigint PRIMARY KEY, keys bigint[])")
    conn.execute("CREATE INDEX ON c_keys USING gin (keys)")
    rows = f"INSERT INTO c_rows SELECT * FROM search_index WHERE {kinds} ORDER BY row_id"
    arrays = "INSERT INTO c_keys SELECT * FROM proto_searchable ORDER BY resource_key"
    for label, sql in (("rows, b-trees", rows), ("arrays, GIN", arrays)):
        started = time.perf_counter()
        conn.execute(sql)
        print(
            f"insert, {label:14}: {(time.perf_counter() - started) * 1000 / n:.3f} ms per message"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slices", type=int, default=3)
    ap.add_argument("--slice-size", type=int, default=300)
    ap.add_argument("--pg", default=DEFAULT_PG)
    args = ap.parse_args()
    os.chdir(Path(__file__).resolve().parent.parent)
    schema = fill(args.slices, args.slice_size)
    with psycopg.connect(args.pg, autocommit=True) as conn:
        try:
            study(conn, schema)
        finally:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


if __name__ == "__main__":
    main()

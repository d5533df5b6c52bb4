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

``--latency N``: instead, N Observations of bench_search.py (20 codes, 20 per patient)
in a scratch schema, the ``searchable`` arrays built from their rows, and the server's
execution time (EXPLAIN ANALYZE, best of 5) of the same questions both ways: a code, a
patient, both, and a first page of 20 by key.

    .venv/bin/python bench/pg_index_arrays.py [--slices 3] [--slice-size 300]
    .venv/bin/python bench/pg_index_arrays.py --latency 200000
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

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


def _arrays(conn: psycopg.Connection, table: str) -> None:
    kinds = f"kind IN ({TOKEN}, {REFERENCE})"
    conn.execute(
        f"CREATE TABLE {table} AS SELECT resource_key, array_agg(DISTINCT h) AS keys FROM ("
        f"SELECT resource_key, {EXACT} FROM search_index WHERE {kinds} "
        f"UNION ALL SELECT resource_key, {BY_CODE} FROM search_index WHERE kind = {TOKEN} "
        f"UNION ALL SELECT resource_key, {PRESENT} FROM search_index WHERE {kinds}"
        ") AS x (resource_key, h) GROUP BY resource_key"
    )
    conn.execute(f"ALTER TABLE {table} ADD PRIMARY KEY (resource_key)")
    conn.execute(f"CREATE INDEX ON {table} USING gin (keys)")
    conn.execute(f"ANALYZE {table}")


def _best_ms(conn: psycopg.Connection, sql: str, params: dict[str, Any]) -> tuple[float, int]:
    best, rows = float("inf"), 0
    for _ in range(5):
        plan = conn.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", params).fetchone()[0]
        best = min(best, float(plan[0]["Execution Time"]))
        rows = int(plan[0]["Plan"]["Actual Rows"])
    return best, rows


def latency(url: str, observations: int) -> None:
    sys.path.insert(0, str(Path.cwd() / "bench"))
    sys.path.insert(0, str(Path.cwd()))
    from bench_search import load
    from pg_schema import scratch_schema

    from adapter.store import make_engine, migrate

    with scratch_schema(url, "arrays") as schema:
        engine = make_engine(schema.url)
        migrate(engine)
        engine.dispose()
        with schema.connect() as conn:
            conn.autocommit = True
            started = time.perf_counter()
            load(conn, observations, 20)
            print(f"{observations} Observations loaded in {time.perf_counter() - started:.0f} s")
            _arrays(conn, "proto")
            one = lambda sql: conn.execute(sql).fetchone()[0]  # noqa: E731
            code_p = one(
                "SELECT param_id FROM search_param WHERE resource_type = 'Observation' "
                f"AND param = 'code' AND kind = {TOKEN}"
            )
            pat_p = one(
                "SELECT param_id FROM search_param WHERE resource_type = 'Observation' "
                f"AND param = 'patient' AND kind = {REFERENCE}"
            )
            loinc = one("SELECT system_id FROM search_system WHERE system = 'http://loinc.org'")
            target = one(  # a patient with a result of the code asked below
                f"SELECT p.target_key FROM search_index p JOIN search_index c USING (resource_key)"
                f" WHERE p.param_id = {pat_p} AND p.target_key IS NOT NULL AND c.param_id ="
                f" {code_p} AND c.code = '1003-3' LIMIT 1"
            )
            h = lambda expr: one(f"SELECT {expr}")  # noqa: E731
            code_h = h(f"hashtextextended('{code_p}|{loinc}|1003-3|', 0)")
            pat_h = h(f"hashtextextended('{pat_p}|||{target}', 0)")
            p = {"cp": code_p, "sys": loinc, "pp": pat_p, "t": target, "ch": code_h, "ph": pat_h}
            code_rows = (
                f"SELECT resource_key FROM search_index WHERE param_id = %(cp)s AND kind = {TOKEN}"
                " AND code = '1003-3' AND system_id = %(sys)s"
            )
            pat_rows = (
                "SELECT resource_key FROM search_index WHERE param_id = %(pp)s"
                f" AND kind = {REFERENCE} AND target_key = %(t)s"
            )
            questions = {
                "a code (5 % of the rows)": (
                    code_rows,
                    "SELECT resource_key FROM proto WHERE keys @> ARRAY[%(ch)s::bigint]",
                ),
                "a patient (20 rows)": (
                    pat_rows,
                    "SELECT resource_key FROM proto WHERE keys @> ARRAY[%(ph)s::bigint]",
                ),
                "code and patient": (
                    f"{pat_rows} INTERSECT {code_rows}",
                    "SELECT resource_key FROM proto WHERE keys @> ARRAY[%(ph)s, %(ch)s]::bigint[]",
                ),
                "a code, first 20 by key": (
                    f"{code_rows} ORDER BY resource_key LIMIT 20",
                    "SELECT resource_key FROM proto WHERE keys @> ARRAY[%(ch)s::bigint]"
                    " ORDER BY resource_key LIMIT 20",
                ),
            }
            n = observations + observations // 20
            rows_b = one(
                "SELECT pg_relation_size('search_index')"
                " + pg_relation_size('ix_search_index_token')"
                " + pg_relation_size('ix_search_index_target')"
                " + pg_relation_size('ix_search_index_resource')"
            )
            arrays_b = one("SELECT pg_total_relation_size('proto')")
            print(
                f"bytes per resource: search_index (all kinds) with its token, target and "
                f"resource indexes {rows_b / n:.0f}; the arrays with theirs {arrays_b / n:.0f}"
            )
            print(f"{'question':28} {'rows (ms)':>12} {'arrays (ms)':>12} {'matches':>8}")
            for name, (rows_sql, arrays_sql) in questions.items():
                rows_ms, n_rows = _best_ms(conn, rows_sql, p)
                arrays_ms, n_arrays = _best_ms(conn, arrays_sql, p)
                same = "" if n_rows == n_arrays else f" (arrays {n_arrays})"
                print(f"{name:28} {rows_ms:12.3f} {arrays_ms:12.3f} {n_rows:8}{same}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slices", type=int, default=3)
    ap.add_argument("--slice-size", type=int, default=300)
    ap.add_argument("--pg", default=DEFAULT_PG)
    ap.add_argument("--latency", type=int, metavar="N", help="the latency study instead")
    args = ap.parse_args()
    os.chdir(Path(__file__).resolve().parent.parent)
    if args.latency:
        latency(args.pg, args.latency)
        return
    schema = fill(args.slices, args.slice_size)
    with psycopg.connect(args.pg, autocommit=True) as conn:
        try:
            study(conn, schema)
        finally:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


if __name__ == "__main__":
    main()

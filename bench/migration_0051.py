"""Benchmark: migration 0051 (decision 0124) up and down on PostgreSQL: ``--resources``
reports (default 400,000: ~400,000 lab messages' DiagnosticReports) at 0048, each with 6
value rows in ``search_index``, every other one two references with no value (a
``performer`` and a ``results-interpreter`` with only a display: rows), three in four with
a ``search_terms`` row naming its subject. Checks the markers after the upgrade and the
rows after the downgrade (the same resources and parameters).

    .venv/bin/python bench/migration_0051.py [--pg URL] [--resources N]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_ingest import DEFAULT_PG
from migration_timing import on_file_or_schema
from sqlalchemy import Engine, text

from adapter.store import migrate
from adapter.store.engine import downgrade

SCHEMA = "bench_migration_0051"
_PARAMS = (
    "INSERT INTO search_param (resource_type, param, kind) VALUES"
    " ('DiagnosticReport', 'date', 3), ('DiagnosticReport', 'performer', 4),"
    " ('DiagnosticReport', 'results-interpreter', 4), ('DiagnosticReport', 'subject', 4)"
)
_ROWS = (
    "INSERT INTO search_index (row_id, resource_key, param_id, kind, value_date_start,"
    " value_date_end) SELECT n, x, (SELECT param_id FROM search_param WHERE param = 'date'), 3,"
    " now(), now() FROM generate_series(1, :n) AS x CROSS JOIN generate_series(0, 5) AS n"
)
_BARE = (
    "INSERT INTO search_index (row_id, resource_key, param_id, kind)"
    " SELECT 6 + (p.param = 'results-interpreter')::int, x, p.param_id, 4"
    " FROM generate_series(2, :n, 2) AS x CROSS JOIN search_param AS p"
    " WHERE p.param IN ('performer', 'results-interpreter')"
)
_TERMS = (
    "INSERT INTO search_terms (resource_key, refs) SELECT x,"
    " ARRAY[((SELECT param_id FROM search_param WHERE param = 'subject')::bigint << 40)"
    " | (x + 10000000)] FROM generate_series(1, :n) AS x WHERE x % 4 <> 3"
)
_BARE_ROWS = text(
    "SELECT resource_key, param_id FROM search_index WHERE kind = 4 AND target_key IS NULL"
    " ORDER BY 1, 2"
)
_MARKERS = text(
    "SELECT t.resource_key, (k >> 40)::int FROM search_terms AS t, unnest(t.refs) AS k"
    " WHERE k & ((1::bigint << 40) - 1) = 0 ORDER BY 1, 2"
)
_SIZE = text(
    "SELECT pg_total_relation_size('search_index') + pg_total_relation_size('search_terms')"
)


def run(engine: Engine, resources: int) -> None:
    migrate(engine, "0048")
    with engine.begin() as conn:
        conn.execute(text(_PARAMS))
        for statement in (_ROWS, _BARE, _TERMS):
            conn.execute(text(statement), {"n": resources})
    with engine.begin() as conn:
        conn.execute(text("ANALYZE search_index, search_terms, search_param"))
        bare = list(conn.execute(_BARE_ROWS))
        size_before = conn.execute(_SIZE).scalar_one()
    start = time.perf_counter()
    migrate(engine, "0051")
    up = time.perf_counter() - start
    with engine.connect() as conn:
        markers = list(conn.execute(_MARKERS))
        left = list(conn.execute(_BARE_ROWS))
    start = time.perf_counter()
    downgrade(engine, "0048")
    down = time.perf_counter() - start
    with engine.connect() as conn:
        back = list(conn.execute(_BARE_ROWS))
    print(
        f"postgresql, {resources:,} resources, {len(bare):,} rows without a value:"
        f" up {up:.1f} s, down {down:.1f} s; search_index + search_terms before"
        f" {size_before / 1e6:.1f} MB; markers = the rows after up: {markers == bare and not left};"
        f" the rows again after down: {back == bare}; load {os.getloadavg()[0]:.1f}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--pg", default=DEFAULT_PG)
    ap.add_argument("--resources", type=int, default=400_000)
    args = ap.parse_args()
    on_file_or_schema(args.pg, None, SCHEMA, lambda engine: run(engine, args.resources))


if __name__ == "__main__":
    main()

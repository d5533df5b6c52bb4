"""Migration 0048 timed on PostgreSQL at a realistic size: up from 0045 (the links of every
record into ``audit_record.links``, the GIN index built, audit_link dropped) and down again.

    .venv/bin/python bench/audit_migration_0048.py [--messages 333334]

The log is bench/pg_audit_links_reads.py's synthetic one (three records a message, one
naming a patient and eight Observations: 333,334 messages are a million records and three
million links), written at 0045 in the schema ``bench_pgaudit_migration``, dropped at the end.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pg_audit_links_reads import PG, build

from adapter.store import make_engine, migrate
from adapter.store.engine import downgrade

SCHEMA = "bench_pgaudit_migration"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--messages", type=int, default=333_334)
    args = ap.parse_args()
    build(args.messages, {"0045": SCHEMA})
    url = make_url(PG).update_query_dict({"options": f"-csearch_path={SCHEMA}"})
    engine = make_engine(url.render_as_string(hide_password=False))
    try:
        for step, run in (("up to 0048", migrate), ("down to 0045", downgrade)):
            started = time.perf_counter()
            run(engine, "0048" if run is migrate else "0045")
            print(f"{step}: {time.perf_counter() - started:.1f} s")
    finally:
        engine.dispose()
        with psycopg.connect(PG.replace("+psycopg", ""), autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{SCHEMA}" CASCADE')


if __name__ == "__main__":
    main()

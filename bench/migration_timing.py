"""What the migration benchmarks share (bench/audit_migration_0029.py,
bench/migration_0034.py): one upgrade and its downgrade timed on a filled store, on a
SQLite file and on a PostgreSQL schema."""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench_ingest import DEFAULT_PG, postgres_engine
from sqlalchemy import Engine, text

from adapter.store import make_engine, migrate
from adapter.store.engine import downgrade


def up_and_down(engine: Engine, before: str, after: str) -> tuple[float, float]:
    """Seconds of the upgrade ``before`` -> ``after`` and of the downgrade back."""
    start = time.perf_counter()
    migrate(engine, after)
    up = time.perf_counter() - start
    start = time.perf_counter()
    downgrade(engine, before)
    return up, time.perf_counter() - start


def database_options(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--pg", default=DEFAULT_PG)
    ap.add_argument("--no-pg", action="store_true")
    ap.add_argument("--no-sqlite", action="store_true")


def on_each_database(args: argparse.Namespace, run: Callable[[Engine], None]) -> None:
    """``run`` on a fresh SQLite file, then on a fresh PostgreSQL schema (dropped after)."""
    if not args.no_sqlite:
        with tempfile.TemporaryDirectory() as tmp:
            engine = make_engine(f"sqlite:///{Path(tmp) / 'store.db'}")
            run(engine)
            engine.dispose()
    if not args.no_pg:
        made = postgres_engine(args.pg)
        if isinstance(made, str):
            print(f"PostgreSQL {made}: skipped")
            return
        engine, drop = made
        try:
            run(engine)
        finally:
            drop()


def on_file_or_schema(
    pg: str, sqlite: str | None, schema: str, run: Callable[[Engine], None]
) -> None:
    """``run`` on the SQLite file ``sqlite`` when given (made afresh, removed after), else on
    the PostgreSQL schema ``schema`` at ``pg`` (made afresh, dropped after)."""
    if sqlite:
        Path(sqlite).unlink(missing_ok=True)
        engine = make_engine(f"sqlite:///{sqlite}")
        try:
            run(engine)
        finally:
            engine.dispose()
            Path(sqlite).unlink(missing_ok=True)
        return
    admin = make_engine(pg)
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = make_engine(pg + f"?options=-csearch_path%3D{schema}")
    try:
        run(engine)
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()

"""Where the PostgreSQL true floor of bench_ingest spends its time: each statement kind's
wall ms per message, over the floor's bulk ingest (``Floor.ingest_many``, 100 messages per
transaction), on a fresh migrated schema; then the same with ``search_index``'s indexes
dropped (what the floor's old-form rows cost in indexes the adapter's PostgreSQL path does
not write the same way).

    .venv/bin/python bench/floor_statements.py [--copies 10] [--pg URL]
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_ingest import Floor, batch, floor_tables, load_fixtures
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from adapter.consortium import load_consortium
from adapter.runtime import make_pipeline
from adapter.settings import Settings
from adapter.store import migrate
from adapter.store import session_factory as make_session_factory

ROOT = Path(__file__).resolve().parent.parent


class TimedCursor:
    """A DB-API cursor whose execute / executemany add their wall time to ``spent``."""

    def __init__(self, cursor: Any, spent: dict[str, float]) -> None:
        self._c = cursor
        self._spent = spent

    def _kind(self, sql: str) -> str:
        words = sql.split()
        verb = words[0].upper()
        table = next((w for w in words[1:6] if w.islower() and w.isidentifier()), "?")
        if verb == "INSERT":
            table = words[2]
        return f"{verb} {table}"

    def execute(self, sql: str, *args: Any) -> Any:
        start = time.perf_counter()
        try:
            return self._c.execute(sql, *args)
        finally:
            self._spent[self._kind(sql)] += time.perf_counter() - start

    def executemany(self, sql: str, *args: Any) -> Any:
        start = time.perf_counter()
        try:
            return self._c.executemany(sql, *args)
        finally:
            self._spent[self._kind(sql)] += time.perf_counter() - start

    def __getattr__(self, name: str) -> Any:
        return getattr(self._c, name)


def run(url: str, copies: int, drop_indexes: bool) -> None:
    schema = f"floor_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    options = f"-csearch_path={schema} -csynchronous_commit=off"
    engine = create_engine(make_url(url).update_query_dict({"options": options}))
    try:
        migrate(engine)
        settings = Settings(database_url=str(engine.url), config=ROOT / "fixtures/consortium.yaml")
        consortium = load_consortium(settings.config)
        pipeline = make_pipeline(settings, consortium, make_session_factory(engine))
        floor = Floor(engine, consortium, floor_tables(pipeline, consortium))
        fixtures = load_fixtures(consortium)
        floor.ingest_many(batch(fixtures, 1, "warm"))
        if drop_indexes:
            with engine.begin() as conn:
                for (name,) in conn.execute(
                    text(
                        "SELECT indexname FROM pg_indexes WHERE schemaname = :s "
                        "AND tablename = 'search_index' AND indexname LIKE 'ix_%'"
                    ),
                    {"s": schema},
                ):
                    conn.execute(text(f'DROP INDEX "{schema}"."{name}"'))
        spent: dict[str, float] = defaultdict(float)
        raw_cursor = floor.conn.cursor
        floor.conn.cursor = lambda *a, **k: TimedCursor(raw_cursor(*a, **k), spent)  # type: ignore[method-assign]
        messages = batch(fixtures, copies, "t")
        cpu, wall = time.process_time(), time.perf_counter()
        floor.ingest_many(messages)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        n = len(messages)
        label = "search_index without its indexes" if drop_indexes else "as migrated"
        with open("/proc/loadavg") as f:
            load = f.read().split()[0]
        print(
            f"{label}: {n} messages, wall {wall * 1000 / n:.2f} ms/msg, "
            f"client CPU {cpu * 1000 / n:.2f} ms/msg, load {load}"
        )
        for kind, seconds in sorted(spent.items(), key=lambda kv: -kv[1]):
            print(f"   {kind:32} {seconds * 1000 / n:7.3f} ms/msg")
        floor.close()
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=10)
    parser.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    for drop in (False, True, False, True):
        run(args.pg, args.copies, drop)


if __name__ == "__main__":
    main()

"""A bulk batch's message results (decision 0133): on SQLite, a batch stored at once holds
each message's result UPDATE to its commit and sends them in one executemany; the rows
are those one transaction per message writes. A refused result there stores the batch
again, a savepoint a message (tests/integration/test_bulk_ingest.py
``test_a_message_failing_after_it_queued_its_rows_drops_them_all``). Runs on SQLite and,
in the ``-m db`` pass, on PostgreSQL (which inserts each row once with its result: 0089).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event, select
from sqlalchemy.orm import Session, sessionmaker

from adapter.store import make_engine, migrate
from adapter.store import session_factory as make_factory
from adapter.store.models import InboundMessage
from tests.integration.referral_support import pipeline_for
from tests.integration.test_bulk_ingest import _fixtures, _routed

_COLUMNS = (
    "source_system",
    "sha256",
    "facility_id",
    "status",
    "issues",
    "resources",
    "attempts",
    "detected_format",
    "encoding",
    "channel",
    "peer",
    "received_at",
    "processed_at",
)


def _message_rows(factory: sessionmaker[Session]) -> list[tuple[Any, ...]]:
    """Every message row as read back, without its id (each run makes its own)."""
    with factory() as session:
        columns = [InboundMessage.__table__.c[name] for name in _COLUMNS]
        return sorted(tuple(row) for row in session.execute(select(*columns)))


def test_a_batch_s_message_rows_are_those_one_by_one_writes(
    session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    items = _fixtures()
    config = _routed(tmp_path)
    bulk = list(pipeline_for(config, session_factory).ingest_many(items, batch=7))
    assert {r.status for r in bulk} - {"processed", "processed-with-warnings"} == set()
    alone_engine = make_engine(f"sqlite:///{tmp_path / 'alone.db'}")
    migrate(alone_engine)
    try:
        alone_factory = make_factory(alone_engine)
        pipeline = pipeline_for(config, alone_factory)
        for raw, receipt in items:
            pipeline.ingest(raw, receipt)
        rows = _message_rows(session_factory)
        assert len(rows) == len(items)
        assert all(row[_COLUMNS.index("attempts")] == 1 for row in rows)
        assert all(row[_COLUMNS.index("processed_at")] is not None for row in rows)
        assert rows == _message_rows(alone_factory)
    finally:
        alone_engine.dispose()


def test_sqlite_sends_a_batch_s_results_in_one_executemany(
    engine: Engine, session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    if engine.dialect.name != "sqlite":
        return  # PostgreSQL writes a new message's row once, with its result (0089)
    items = _fixtures()[:10]
    updates: list[tuple[bool, int]] = []

    def seen(_conn: Any, _cursor: Any, statement: str, params: Any, _ctx: Any, many: bool) -> None:
        if statement.lstrip().upper().startswith("UPDATE INBOUND_MESSAGE"):
            updates.append((many, len(params) if many else 1))

    event.listen(engine, "before_cursor_execute", seen)
    try:
        results = list(pipeline_for(_routed(tmp_path), session_factory).ingest_many(items, batch=4))
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert [r.duplicate for r in results] == [False] * len(items)
    # batches of 4, 4 and 2: one UPDATE statement each, of every message's result
    assert updates == [(True, 4), (True, 4), (True, 2)]

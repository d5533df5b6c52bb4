"""A bulk batch writes each new message's row once (decision 0089), on SQLite and, in the
``-m db`` pass, on PostgreSQL.

PostgreSQL: the row is inserted when the message's result is known, in its final form (an
INSERT then an UPDATE left a dead copy of every message row); the foreign keys to the
message are deferred to the batch's commit, and only in a batch. SQLite: as before (the
row inserted on receipt, its result written by an UPDATE, which leaves no dead copy
there). Either way every message reads back the same.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, event, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from adapter.store import create_message, get_message, verified_raw
from adapter.store.models import InboundMessage, Resource
from adapter.store.resources import batch_writes, flush_batch_writes
from tests.integration.connector_helpers import example_pipeline
from tests.integration.test_bulk_ingest import _fixtures

T0 = datetime(2026, 12, 5, 3, 0, 0, 123000, tzinfo=UTC)


def _statements(engine: Engine) -> tuple[Counter[str], Any]:
    """Counts of INSERT / UPDATE statements on inbound_message (rows, for executemany)."""
    seen: Counter[str] = Counter()

    def count(
        conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool
    ) -> None:
        head = " ".join(statement.split()[:3]).upper()
        rows = len(params) if many else 1
        if head.startswith("INSERT INTO INBOUND_MESSAGE"):
            seen["insert"] += rows
        elif head.startswith("UPDATE INBOUND_MESSAGE"):
            seen["update"] += rows

    event.listen(engine, "before_cursor_execute", count)
    return seen, count


def test_a_batch_writes_each_new_message_row_once(
    engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    items = _fixtures()
    seen, listener = _statements(engine)
    try:
        results = list(example_pipeline(session_factory).ingest_many(items, batch=6))
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    assert not any(r.duplicate for r in results)
    stored = len(results)
    if engine.dialect.name == "postgresql":
        assert seen == Counter({"insert": stored})  # no UPDATE: each row once, final
    else:
        assert seen == Counter({"insert": stored, "update": stored})  # unchanged
    with session_factory() as session:
        for (raw, receipt), result in zip(items, results, strict=True):
            message = get_message(session, result.message_id)
            assert message is not None
            assert verified_raw(message) == raw  # the bytes and their sha256
            assert (message.source_system, message.channel, message.peer) == (
                receipt.source_system,
                receipt.channel,
                receipt.peer,
            )
            assert message.status == result.status
            assert message.resources == result.resources
            assert len(message.issues) == len(result.issues)
            assert message.attempts == 1 and message.processed_at is not None
            assert message.detected_format == "hl7v2" and message.size == len(raw)
            # every resource the message made names it (the deferred keys held at commit)
            made = session.scalars(
                select(Resource.message_id).where(Resource.message_id == message.id)
            ).all()
            assert made


def test_a_held_message_without_a_result_is_kept_at_the_commit(
    session_factory: sessionmaker[Session],
) -> None:
    """No step leaves a message of a batch without its result; if one did, the row is
    written as received at the commit, never lost."""
    with session_factory.begin() as session:
        batch_writes(session)
        message = create_message(
            session,
            source_system="lis",
            facility_id="h1",
            raw=b"MSH|^~\\&|held",
            content_type="x-application/hl7-v2+er7",
            sha256="ab" * 32,
            detected_format="hl7v2",
            encoding="utf-8",
            received_at=T0,
            channel="cli",
        )
        message_id = message.id
        flush_batch_writes(session)
    with session_factory() as session:
        row = session.get(InboundMessage, message_id)
        assert row is not None
        assert (row.status, row.attempts, row.raw, row.sha256) == (
            "received",
            0,
            b"MSH|^~\\&|held",
            "ab" * 32,
        )


_ORPHAN = text(
    "INSERT INTO resource (resource_type, id, version_id, last_updated, deleted, content_hash,"
    " body, message_id) VALUES ('Basic', 'orphan', 1, now(), false, '\\x00', '\\x00',"
    " '\\x00112233445566778899aabbccddeeff')"
)


def test_postgresql_defers_the_message_keys_in_a_batch_only(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite: the foreign keys are as before")
    factory = sessionmaker(engine)
    # outside a batch: refused at once
    with factory() as session, session.begin(), pytest.raises(IntegrityError):
        session.execute(_ORPHAN)
    session = factory()
    try:
        session.begin()
        batch_writes(session)
        session.execute(_ORPHAN)  # deferred: the statement passes ...
        with pytest.raises(IntegrityError):
            session.commit()  # ... the commit checks it
    finally:
        session.close()
    with factory() as session:
        assert session.scalar(select(Resource.id).where(Resource.id == "orphan")) is None

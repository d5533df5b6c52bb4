"""PostgreSQL advisory locks are per database: the adapter's (the audit chain's, the patient
index's keys) are scoped to its schema, so that two adapters on one database in two schemas
never wait for each other, while two transactions in one schema still serialise
(adapter/store/advisory.py, decision 0090)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from adapter.audit import writer
from adapter.audit.events import AuditEvent
from adapter.identity.index.locks import key_hash, serialise, serialise_records
from adapter.store import make_engine, migrate

KEYS = [key_hash("id:110101199003078515"), key_hash("card:A1234567")]
RECORD = "1b7c0d0e-0000-4000-8000-000000000001"


def _body() -> dict[str, object]:
    event = AuditEvent(
        action="message.received",
        outcome="success",
        actor="source:lis",
        subject="InboundMessage/m1",
        correlation_id=None,
        at=datetime(2026, 12, 5, tzinfo=UTC),
    )
    return writer._body(event, None)


@pytest.fixture
def other_schema(database_url: str) -> Iterator[Engine]:
    """A second migrated schema on the same database as the test's own."""
    if make_url(database_url).get_backend_name() != "postgresql":
        pytest.skip("advisory locks are PostgreSQL's")
    schema = f"t_other_{uuid.uuid4().hex[:8]}"
    admin = make_engine(database_url, poolclass=NullPool)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    options = f"-csearch_path={schema} -csynchronous_commit=off"
    engine = make_engine(make_url(database_url).update_query_dict({"options": options}))
    try:
        migrate(engine)
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def _hold(session: Session) -> None:
    """Take the patient index's and the audit chain's locks as a storing transaction does."""
    serialise(session, KEYS)
    serialise_records(session, KEYS, [RECORD])
    writer.write(session, [_body()])


def _waits(factory: sessionmaker[Session]) -> bool:
    """Whether taking the same locks in a transaction of ``factory`` has to wait."""
    with factory() as session:
        session.execute(text("SET LOCAL lock_timeout = '300ms'"))
        try:
            _hold(session)
        except OperationalError as exc:
            assert "lock timeout" in str(exc)
            return True
        finally:
            session.rollback()
    return False


def test_another_schema_never_waits_for_this_ones_locks(
    session_factory: sessionmaker[Session], other_schema: Engine
) -> None:
    other = sessionmaker(bind=other_schema)
    with session_factory() as holder:
        _hold(holder)  # held until the rollback below
        try:
            assert _waits(session_factory)  # the same schema: serialised, as it must be
            assert not _waits(other)  # another schema: free
        finally:
            holder.rollback()
    assert not _waits(session_factory)  # released with the transaction

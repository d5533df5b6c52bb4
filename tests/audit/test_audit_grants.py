"""On PostgreSQL the service's database user cannot change or remove audit rows: a real
role, given exactly the grants ``adapter audit grants`` prints (docs/audit.md), ingests
and delivers as usual but is refused UPDATE, DELETE and TRUNCATE on the audit tables."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.pool import NullPool

from adapter.audit.grants import service_grants
from adapter.pipeline import Receipt
from adapter.store import make_engine, session_factory
from tests.audit.audit_support import ORU, check
from tests.integration.connector_helpers import example_pipeline


@pytest.fixture
def service_engine(database_url: str, engine: Engine) -> Iterator[Engine]:
    if engine.dialect.name != "postgresql":
        pytest.skip("grants are PostgreSQL's (SQLite has no users)")
    role = f"adapter_service_{uuid.uuid4().hex[:8]}"
    with engine.begin() as conn:
        schema = conn.execute(text("SELECT current_schema()")).scalar_one()
        conn.execute(text(f'CREATE ROLE "{role}" LOGIN'))
        for statement in service_grants(role, schema):
            conn.execute(text(statement))
    url = make_url(database_url).set(username=role, password=None)
    service = make_engine(url.render_as_string(hide_password=False), poolclass=NullPool)
    try:
        yield service
    finally:
        service.dispose()
        with engine.begin() as conn:
            conn.execute(text(f'DROP OWNED BY "{role}"'))
            conn.execute(text(f'DROP ROLE "{role}"'))


def test_the_service_user_appends_but_cannot_change_the_audit_log(
    service_engine: Engine,
) -> None:
    factory = session_factory(service_engine)
    result = example_pipeline(factory).ingest(ORU.read_bytes(), Receipt("std-hl7v2", "cli"))
    assert result.accepted  # the service works with these grants, audit records included
    with factory() as session:
        assert session.execute(text("SELECT count(*) FROM audit_record")).scalar_one() == 3
        session.execute(text("UPDATE resource SET deleted = deleted"))  # its own tables: yes
    for statement in (
        "UPDATE audit_record SET outcome = 'success'",
        "DELETE FROM audit_record",
        "UPDATE audit_record SET links = NULL",  # the links (migration 0048)
        "UPDATE audit_checkpoint SET hash = hash",
        "TRUNCATE audit_record CASCADE",
    ):
        with factory() as session, pytest.raises(ProgrammingError) as refused:
            session.execute(text(statement))
        assert "permission denied" in str(refused.value.orig), statement
    assert check(factory).ok

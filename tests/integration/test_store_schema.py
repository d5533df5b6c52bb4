"""Schema: the migration builds exactly the tables the models describe, on both databases."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, Table, inspect, text

from adapter.store import Base, make_engine, migrate


def _made_on(dialect: str) -> Callable[..., bool]:
    """Compare only what the models create on ``dialect``: a constraint made for one
    database alone (``ddl_if``: search_index's foreign key is SQLite's only, decision 0060)
    is not expected on the other. Alembic does not read ``ddl_if`` itself."""

    def include(obj: Any, _name: Any, _type: str, reflected: bool, _to: Any) -> bool:
        only = getattr(obj, "_ddl_if", None)
        # a table made on one database alone (search_terms: PostgreSQL, decision 0088)
        table = obj if isinstance(obj, Table) else getattr(obj, "table", None)
        if isinstance(table, Table) and table.info.get("dialect") not in (None, dialect):
            return reflected
        return reflected or only is None or only.dialect in (None, dialect)

    return include


def test_migrate_builds_schema_matching_models_and_is_idempotent(blank_database_url: str) -> None:
    engine = make_engine(blank_database_url)
    try:
        migrate(engine)
        migrate(engine)  # second run at head: nothing to do, no error
        with engine.connect() as conn:
            opts = {"compare_type": True, "include_object": _made_on(conn.dialect.name)}
            diff = compare_metadata(MigrationContext.configure(conn, opts=opts), Base.metadata)
            version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
        assert diff == []
        assert version
        tables = set(inspect(engine).get_table_names())
        assert {
            "inbound_message",
            "resource",
            "resource_version",
            "search_index",
            "outbox",
        } <= tables
    finally:
        engine.dispose()


def test_outbox_has_state_index_and_message_sha_is_unique(engine: Engine) -> None:
    inspector = inspect(engine)
    outbox_indexes = {tuple(ix["column_names"]) for ix in inspector.get_indexes("outbox")}
    assert ("state", "next_attempt_at") in outbox_indexes
    assert ("destination_id", "state", "order_key") in outbox_indexes  # decision 0079
    uniques = inspector.get_unique_constraints("inbound_message")
    assert any(u["column_names"] == ["source_system", "sha256"] for u in uniques)


def test_sqlite_connections_use_wal_and_foreign_keys(tmp_path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        engine.dispose()


def test_plain_postgresql_url_gets_the_psycopg_driver() -> None:
    engine = make_engine("postgresql://user@localhost/db")
    assert engine.dialect.driver == "psycopg"
    engine.dispose()

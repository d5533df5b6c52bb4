"""Migration 0053 (decision 0127): PostgreSQL's partial index of the resources marked
deleted, made and dropped; SQLite has none at any step."""

from __future__ import annotations

from sqlalchemy import Engine, inspect

from adapter.store import make_engine, migrate
from adapter.store.engine import downgrade


def _indexed(engine: Engine) -> bool:
    return "ix_resource_deleted" in {i["name"] for i in inspect(engine).get_indexes("resource")}


def test_0053_deleted_index_made_and_dropped(blank_database_url: str) -> None:
    engine = make_engine(blank_database_url)
    try:
        migrate(engine)
        postgresql = engine.dialect.name == "postgresql"
        assert _indexed(engine) == postgresql
        downgrade(engine, "0052")
        assert not _indexed(engine)
        migrate(engine)
        assert _indexed(engine) == postgresql
    finally:
        engine.dispose()

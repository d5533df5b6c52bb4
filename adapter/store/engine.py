"""Engine, sessions and schema migration."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
SQLITE_BEGIN = "sqlite_begin"  # execution option: "IMMEDIATE" (default) or "DEFERRED"


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url``: SQLite (WAL, foreign keys) or PostgreSQL via psycopg 3."""
    parsed = make_url(url)
    # statement parameters hold patient data (names, ID numbers, addresses): never put them
    # into exception texts, which end up in logs and tracebacks
    kwargs.setdefault("hide_parameters", True)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(parsed, **kwargs)
        _configure_sqlite(engine)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(parsed, **kwargs)


def _configure_sqlite(engine: Engine) -> None:
    # The sqlite3 module's own transaction handling starts transactions late and never
    # for SELECT; let SQLAlchemy issue BEGIN itself so a session is one real transaction.
    # BEGIN IMMEDIATE takes the write lock up front: a deferred transaction that reads
    # first and writes later fails at once with "database is locked" when another writer
    # committed in between (busy_timeout cannot help it). Read-only sessions can ask for
    # a deferred BEGIN with the execution option SQLITE_BEGIN: "DEFERRED" (read_only()).
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=10000")
        if engine.url.database not in (None, "", ":memory:"):
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")  # safe with WAL
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        mode = connection.get_execution_options().get(SQLITE_BEGIN, "IMMEDIATE")
        connection.exec_driver_sql(f"BEGIN {'DEFERRED' if mode == 'DEFERRED' else 'IMMEDIATE'}")


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions whose objects stay readable after commit (expire_on_commit=False)."""
    return sessionmaker(engine, expire_on_commit=False)


def read_only(session: Session) -> Session:
    """Mark a fresh session as reading only: on SQLite it then does not take the write
    lock (no effect on PostgreSQL). Call before the first query."""
    session.connection(execution_options={SQLITE_BEGIN: "DEFERRED"})
    return session


def alembic_config() -> Config:
    """Alembic configuration pointing at the packaged migrations (no alembic.ini needed)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (alembic upgrade), on one connection of ``engine``."""
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

"""Alembic environment: runs on the connection given by ``adapter.store.migrate``.

Run by hand (for ``alembic revision --autogenerate`` while developing) it connects to
``sqlalchemy.url`` from the alembic config, else to ``Settings.database_url``.
"""

from __future__ import annotations

from alembic import context

from adapter.store.models import Base

target_metadata = Base.metadata


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # ALTER TABLE via copy on SQLite
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    from adapter.settings import get_settings
    from adapter.store.engine import make_engine, migration_connection

    url = context.config.get_main_option("sqlalchemy.url") or get_settings().database_url
    engine = make_engine(url)
    try:
        with migration_connection(engine) as conn:
            _run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run against a database")
run_migrations_online()

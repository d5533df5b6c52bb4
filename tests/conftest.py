"""Shared fixtures: a migrated database per test, settings, the app and a test client.

By default every test gets its own SQLite file in tmp_path (copied from a template that was
migrated once per session). With ``ADAPTER_TEST_DATABASE_URL`` set, e.g.
``postgresql+psycopg://postgres@127.0.0.1:5432/test``, the tests use that server instead:
one schema per test run and pytest-xdist worker (``search_path`` set through the URL),
migrated once, emptied before each test and dropped at the end.

Every test that uses ``database_url`` (directly or through ``engine``, ``session_factory``,
``settings``, ``app``, ``client``) or ``module_database_url`` is marked ``db`` automatically.

Read-only tests over the same seeded data can share one database per module through
``module_database_url`` (creating the app per test costs far more than the tests).
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from adapter import store
from adapter.api.app import create_app
from adapter.settings import Settings
from adapter.store import Saved, make_engine, migrate, save_resources
from adapter.store.interning import forget_all as forget_interned

TEST_DATABASE_ENV = "ADAPTER_TEST_DATABASE_URL"

# The suite runs with authentication off (ADAPTER_AUTH=off) for the app, the CLI and the
# servers it starts; a test about authentication turns it on for itself
# (Settings(auth=True), or ADAPTER_AUTH=on in a LiveServer's env): tests/api/test_auth*.py
os.environ["ADAPTER_AUTH"] = "off"


def pytest_configure(config: pytest.Config) -> None:
    # no log line of the suite may hold a national ID or a mobile number (docs/security.md)
    config.pluginmanager.import_plugin("tests.log_scan")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # before -m selection runs, so `pytest -m db` sees these marks
    for item in items:
        names = getattr(item, "fixturenames", ())
        # blank_database_url too: the migration tests are PostgreSQL tests in the -m db pass
        if {"database_url", "module_database_url", "blank_database_url"} & set(names):
            item.add_marker(pytest.mark.db)


def _postgres_base() -> str | None:
    return os.environ.get(TEST_DATABASE_ENV) or None


def _schema_url(base: str, schema: str) -> str:
    # tests need no durability: not waiting for the WAL flush makes commits much cheaper
    options = f"-csearch_path={schema} -csynchronous_commit=off"
    url = make_url(base).update_query_dict({"options": options})
    return url.render_as_string(hide_password=False)


def _new_schema_name(prefix: str) -> str:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID", uuid.uuid4().hex)[:8]
    return f"{prefix}_{run}_{worker}".lower()


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Commands under test (``adapter worker``, ``connectors``) configure logging for the
    whole process; undo it after each test so a later test's output is not changed."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture(autouse=True)
def _fresh_search_shapes() -> Iterator[None]:
    """Searches' pre-reads kept per shape (decision 0142) are built with the module's
    constants of the time: a test that patches one (``FEW_ROWS``) starts with none kept."""
    from adapter.store import search_preshape

    search_preshape.clear()
    yield
    search_preshape.clear()


@pytest.fixture(scope="session")
def _postgres_schema() -> Iterator[tuple[str, Engine] | None]:
    """A migrated schema for this run and worker, dropped at the end (PostgreSQL only),
    with an engine on it that empties the tables between tests."""
    base = _postgres_base()
    if base is None:
        yield None
        return
    schema = _new_schema_name("t")
    admin = make_engine(base, poolclass=NullPool)
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = _schema_url(base, schema)
    engine = make_engine(url, pool_size=1, max_overflow=0)
    migrate(engine)
    try:
        yield url, engine
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test (faster than migrating each time)."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine)
    engine.dispose()  # the last connection closing folds the WAL into the file
    return path


def _empty_tables(engine: Engine) -> None:
    with engine.begin() as conn:
        tables = (
            conn.execute(
                text(
                    "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
                    "AND tablename <> 'alembic_version'"
                )
            )
            .scalars()
            .all()
        )
        if tables:
            names = ", ".join(f'"{t}"' for t in tables)
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    forget_interned()  # search_system's and search_param's ids start again (interning.py)


@pytest.fixture
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """URL of an empty, migrated database for this test."""
    postgres = request.getfixturevalue("_postgres_schema")
    if postgres is not None:
        url, cleaner = postgres
        _empty_tables(cleaner)
        return url
    path = tmp_path / "adapter.db"
    shutil.copyfile(request.getfixturevalue("_sqlite_template"), path)
    return f"sqlite:///{path}"


@pytest.fixture(scope="module")
def module_database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """URL of an empty, migrated database shared by the tests of one module: seed it in a
    module-scoped fixture and only read it in the tests. A schema of its own on
    PostgreSQL, so the per-test emptying of ``database_url`` does not touch it."""
    base = _postgres_base()
    if base is None:
        path = tmp_path_factory.mktemp("module") / "adapter.db"
        shutil.copyfile(request.getfixturevalue("_sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    schema = _new_schema_name(f"m{uuid.uuid4().hex[:6]}")
    admin = make_engine(base, poolclass=NullPool)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = _schema_url(base, schema)
    engine = make_engine(url, poolclass=NullPool)
    migrate(engine)
    engine.dispose()
    try:
        yield url
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def blank_database_url(tmp_path: Path) -> Iterator[str]:
    """URL of an empty database without any schema (to test migrations)."""
    base = _postgres_base()
    if base is None:
        yield f"sqlite:///{tmp_path / 'blank.db'}"
        return
    schema = _new_schema_name(f"b{uuid.uuid4().hex[:6]}")
    admin = make_engine(base, poolclass=NullPool)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield _schema_url(base, schema)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def session_factory(engine: Engine) -> sessionmaker[Session]:
    return store.session_factory(engine)


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url)


@pytest.fixture
def app(settings: Settings) -> Iterator[FastAPI]:
    app = create_app(settings)
    yield app
    app.state.engine.dispose()  # also when no client ran the lifespan


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def save(session_factory: sessionmaker[Session]) -> Callable[..., list[Saved]]:
    """``save(resources, now=...)``: store resources in one committed transaction."""

    def _save(
        resources: list[dict[str, Any]],
        *,
        now: datetime | None = None,
        message_id: str | None = None,
    ) -> list[Saved]:
        with session_factory.begin() as session:
            return save_resources(
                session, resources, message_id=message_id, now=now or datetime.now(UTC)
            )

    return _save


@pytest.fixture
def fhir_valid() -> Callable[[dict[str, Any]], Any]:
    """``fhir_valid(body)``: parse a FHIR JSON dict with fhir.resources (R4B models); raises
    pydantic.ValidationError when it is not a valid resource of its resourceType."""
    from fhir.resources.R4B import get_fhir_model_class

    def _validate(body: dict[str, Any]) -> Any:
        return get_fhir_model_class(body["resourceType"]).model_validate(body)

    return _validate

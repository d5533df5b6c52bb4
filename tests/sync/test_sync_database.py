"""adapter sync over a database view (中间库) on the local MariaDB and PostgreSQL: the
window by watermark, a late commit (1 % of the day's rows written with an old watermark)
found by report number through the view's own list and replayed, a voided report carried
as deleted, an unreachable database giving exit 2 with the reason.

The servers must be there: a missing one FAILS these tests (never skipped). MariaDB:
root without password on 127.0.0.1:3306, database ``test``; PostgreSQL:
ADAPTER_TEST_DATABASE_URL or postgres@127.0.0.1:5432/test.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from adapter.store.models import Resource
from tests.sync.support import (
    FACILITY,
    ROW_SOURCE,
    SOURCE_SYSTEM,
    consortium_file,
    environment,
    lab_report,
    report_key,
    run_cli,
    sync_json,
)

DAY = date(2026, 11, 20)
MARIADB_URL = "mysql+pymysql://root@127.0.0.1:3306/test?charset=utf8mb4"
POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _server(url: str, what: str) -> Engine:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        pytest.fail(
            f"{what} is needed on {url.split('@')[-1]} ({type(exc).__name__})", pytrace=False
        )
    return engine


@pytest.fixture
def mariadb() -> Iterator[tuple[str, Engine]]:
    engine = _server(MARIADB_URL, "MariaDB (root, no password, database test)")
    yield MARIADB_URL, engine
    engine.dispose()


@pytest.fixture
def postgres_view_db(database_url: str) -> Iterator[tuple[str, Engine]]:
    """The PostgreSQL server as the hospital's view database (the test's own schema)."""
    base = os.environ.get("ADAPTER_TEST_DATABASE_URL") or POSTGRES_URL
    admin = _server(base, "PostgreSQL")
    schema = f"hisview_{uuid.uuid4().hex[:8]}"
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = f"{base}{'&' if '?' in base else '?'}options=-csearch_path%3D{schema}"
    engine = create_engine(url, poolclass=NullPool)
    try:
        yield url, engine
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _fill(engine: Engine, table: str, late: set[int], voided: set[int]) -> None:
    """100 lab reports of DAY; the ``late`` ones committed with a watermark from before
    the window (a late commit); the ``voided`` ones marked 作废."""
    day_start = datetime(DAY.year, DAY.month, DAY.day, 8, 0)
    with engine.begin() as conn:
        conn.execute(text(f"DROP VIEW IF EXISTS v_{table}"))
        conn.execute(text(f"DROP TABLE IF EXISTS {table}"))
        conn.execute(
            text(
                f"CREATE TABLE {table} (report_no VARCHAR(32) PRIMARY KEY, "
                "report_date DATE NOT NULL, updated_at TIMESTAMP NOT NULL, "
                "hl7 TEXT NOT NULL, state VARCHAR(8) NOT NULL)"
            )
        )
        for number in range(1, 101):
            stamp = day_start + timedelta(minutes=number)
            if number in late:
                stamp = day_start - timedelta(days=2)
            conn.execute(
                text(f"INSERT INTO {table} VALUES (:k, :d, :u, :h, :s)"),
                {
                    "k": report_key(number),
                    "d": DAY,
                    "u": stamp,
                    "h": lab_report(number).decode("utf-8"),
                    "s": "作废" if number in voided else "正常",
                },
            )
        conn.execute(text(f"CREATE VIEW v_{table} AS SELECT * FROM {table}"))


def _source(url: str, table: str) -> dict[str, object]:
    return {
        "id": "county-lis-view",
        "facility": FACILITY,
        "source": SOURCE_SYSTEM,
        "document_kind": "lab-report",
        "database": {
            "url": url,
            "view": f"v_{table}",
            "key_column": "report_no",
            "watermark_column": "updated_at",
            "day_column": "report_date",
            "document_column": "hl7",
            "status_column": "state",
        },
    }


def _scenario(
    url: str, engine: Engine, tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = f"lis_{uuid.uuid4().hex[:8]}"
    _fill(engine, table, late={37}, voided={5})
    env = environment(database_url, consortium_file(tmp_path, [_source(url, table)]))
    try:
        code, report = sync_json(env, "--day", DAY.isoformat(), monkeypatch=monkeypatch)
        assert code == 1, report
        [part] = report["sources"]
        assert part["source"]["how"] == "the view" and part["source"]["count"] == 100
        assert part["received"]["total"] == 99
        assert part["gaps"]["missing"] == [report_key(37)]
        assert part["deleted"] == [report_key(5)]

        code, report = sync_json(
            env, "--day", DAY.isoformat(), "--replay-gaps", monkeypatch=monkeypatch
        )
        assert code == 0, report
        [part] = report["sources"]
        assert part["replayed"] == [report_key(37)]
        assert part["received"]["total"] == 100 and part["gaps"]["missing"] == []

        # the next night re-reads the overlap: nothing is stored twice
        code, report = sync_json(env, "--day", DAY.isoformat(), monkeypatch=monkeypatch)
        assert code == 0 and report["sources"][0]["received"]["total"] == 100
    finally:
        with engine.begin() as conn:
            conn.execute(text(f"DROP VIEW IF EXISTS v_{table}"))
            conn.execute(text(f"DROP TABLE IF EXISTS {table}"))


def test_mariadb_view_late_commit_found_by_key_and_replayed(
    mariadb: tuple[str, Engine], tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _scenario(*mariadb, tmp_path, database_url, monkeypatch)


def test_postgresql_view_late_commit_found_by_key_and_replayed(
    postgres_view_db: tuple[str, Engine],
    tmp_path: Path,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _scenario(*postgres_view_db, tmp_path, database_url, monkeypatch)


def test_an_unreachable_database_exits_2_naming_it_without_the_password(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = "mysql+pymysql://lis:s3cret-pw@127.0.0.1:1/lis"
    env = environment(database_url, consortium_file(tmp_path, [_source(url, "nothing")]))
    code, text_out = run_cli(
        env, "sync", "--day", DAY.isoformat(), "--lang", "en", monkeypatch=monkeypatch
    )
    assert code == 2
    assert "source unreachable: database mysql+pymysql://lis:***@127.0.0.1:1/lis" in text_out
    assert "s3cret-pw" not in text_out


def test_a_view_row_is_the_document_read_through_a_json_mapping(
    mariadb: tuple[str, Engine],
    tmp_path: Path,
    database_url: str,
    session_factory: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, engine = mariadb
    table = f"lisrow_{uuid.uuid4().hex[:8]}"
    with engine.begin() as conn:
        conn.execute(
            text(
                f"CREATE TABLE {table} (report_no VARCHAR(32) PRIMARY KEY, report_date DATE, "
                "updated_at DATETIME, item_name VARCHAR(32), result_value DOUBLE, "
                "unit VARCHAR(16), state VARCHAR(8))"
            )
        )
        for number in range(1, 6):
            conn.execute(
                text(f"INSERT INTO {table} VALUES (:k, :d, :u, '葡萄糖', :v, 'mmol/L', '正常')"),
                {
                    "k": report_key(number),
                    "d": DAY,
                    "u": datetime(2026, 11, 20, 9, number),
                    "v": 5 + number / 10,
                },
            )
    source = {
        "id": "county-lis-rows",
        "facility": FACILITY,
        "source": ROW_SOURCE,
        "document_kind": "lab-result",
        "database": {
            "url": url,
            "view": table,
            "key_column": "report_no",
            "watermark_column": "updated_at",
            "day_column": "report_date",
        },
    }
    env = environment(database_url, consortium_file(tmp_path, [source]))
    try:
        code, report = sync_json(env, "--day", DAY.isoformat(), monkeypatch=monkeypatch)
    finally:
        with engine.begin() as conn:
            conn.execute(text(f"DROP TABLE IF EXISTS {table}"))
    assert code == 0, report
    assert report["sources"][0]["received"]["processed"] == 5
    with session_factory() as session:
        bodies = [r.body for r in session.scalars(select(Resource))]
    values = sorted(
        b["valueQuantity"]["value"] for b in bodies if b["resourceType"] == "Observation"
    )
    assert values == [5.1, 5.2, 5.3, 5.4, 5.5]
    assert {b["code"]["text"] for b in bodies if b["resourceType"] == "Observation"} == {"葡萄糖"}

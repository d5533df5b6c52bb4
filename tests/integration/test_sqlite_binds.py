"""A SQLite engine registers identity adapters for ``None`` and ``bytes``
(adapter/store/sqlite_binds.py, decision 0140): the values are bound as before (NULL, the
same BLOB; a bytes subclass or another type untouched), a resource and its index rows read
back the same, and an adapter registered before is kept."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from adapter.store import make_engine, migrate
from adapter.store.models import Resource
from adapter.store.resources import read_resource, save_resources

T = datetime(2026, 12, 7, 4, 0, tzinfo=UTC)


class _Blob(bytes):
    """A bytes subclass: not looked up under ``bytes``' key."""


def test_a_sqlite_engine_registers_the_identity_adapters(tmp_path: Path) -> None:
    make_engine(f"sqlite:///{tmp_path}/a.db").dispose()
    none = sqlite3.adapters[(type(None), sqlite3.PrepareProtocol)]
    same = sqlite3.adapters[(bytes, sqlite3.PrepareProtocol)]
    blob = b"\x00\xffzstd"
    assert none(None) is None
    assert same(blob) is blob


def test_values_are_bound_as_before(tmp_path: Path) -> None:
    make_engine(f"sqlite:///{tmp_path}/a.db").dispose()
    connection = sqlite3.connect(tmp_path / "b.db")
    connection.execute("CREATE TABLE t (n INTEGER, a, b, c)")
    rows = [
        (0, None, b"\x00\x01", _Blob(b"sub")),
        (1, b"", None, True),
        (2, bytearray(b"ba"), 1.5, "text"),
    ]
    connection.executemany("INSERT INTO t VALUES (?, ?, ?, ?)", rows)
    found = connection.execute(
        "SELECT n, a, typeof(a), b, typeof(b), c, typeof(c) FROM t ORDER BY n"
    ).fetchall()
    connection.close()
    assert found == [
        (0, None, "null", b"\x00\x01", "blob", b"sub", "blob"),
        (1, b"", "blob", None, "null", 1, "integer"),
        (2, b"ba", "blob", 1.5, "real", "text", "text"),
    ]


def test_a_resource_with_empty_columns_reads_back_the_same(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/store.db")
    migrate(engine)
    patient = {"resourceType": "Patient", "id": "p1", "gender": "female"}
    try:
        with Session(engine) as session, session.begin():
            (saved,) = save_resources(session, [patient], message_id=None, now=T)
        with Session(engine) as session:
            row = session.execute(
                select(Resource.message_id, Resource.facility_key, Resource.patient_key)
            ).one()
            body = read_resource(session, "Patient", "p1")
    finally:
        engine.dispose()
    assert tuple(row) == (None, None, saved.patient_key)
    assert body is not None and body["gender"] == "female" and body["meta"]["versionId"] == "1"


def test_an_adapter_registered_before_is_kept(tmp_path: Path) -> None:
    # in a process of its own: sqlite3's registry is the process's
    code = (
        "import sqlite3\n"
        "from adapter.store import make_engine\n"
        "mine = lambda v: v\n"
        "sqlite3.register_adapter(bytes, mine)\n"
        f"make_engine('sqlite:///{tmp_path}/c.db').dispose()\n"
        "assert sqlite3.adapters[(bytes, sqlite3.PrepareProtocol)] is mine\n"
        "assert sqlite3.adapters[(type(None), sqlite3.PrepareProtocol)](None) is None\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])

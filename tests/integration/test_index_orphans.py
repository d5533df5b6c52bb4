"""Index rows never outlive their resource (decision 0060).

On PostgreSQL search_index.resource_key has no foreign key since migration 0021: the rows
are written only by the store, in the transaction that writes their resource, and no code
deletes resource rows. These tests hold both halves of that: every path that replaces or
drops index rows (a change, a rebuild, a message rolled back in a bulk batch: the last in
test_bulk_ingest.py) leaves none without its resource, and nothing in the adapter deletes
resource rows (a new such path must delete their index rows too, or add the key back).
Runs on SQLite and, in the ``-m db`` pass, on PostgreSQL.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, func, inspect, select
from sqlalchemy.orm import Session, sessionmaker

from adapter.store import Resource, SearchIndex, reindex, save_resources

T0 = datetime(2026, 5, 3, 2, 0, tzinfo=UTC)
ADAPTER = Path(__file__).resolve().parents[2] / "adapter"


def orphan_index_rows(session: Session) -> int:
    """Index rows whose resource_key names no resource row."""
    known = select(Resource.resource_key).where(Resource.resource_key == SearchIndex.resource_key)
    return session.execute(
        select(func.count()).select_from(SearchIndex).where(~known.exists())
    ).scalar_one()


def _observation(value: str) -> dict:
    return {
        "resourceType": "Observation",
        "id": "o1",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}]},
        "subject": {"reference": "Patient/p1"},
        "valueString": value,
        "effectiveDateTime": "2026-05-03T10:00:00+08:00",
    }


def test_the_index_key_is_checked_by_the_database_on_sqlite_only(engine: Engine) -> None:
    keys = inspect(engine).get_foreign_keys("search_index")
    referred = {k["referred_table"] for k in keys}
    if engine.dialect.name == "postgresql":
        assert "resource" not in referred
    else:
        assert referred == {"resource"}


def test_changing_and_rebuilding_leaves_no_index_row_without_its_resource(
    session_factory: sessionmaker[Session],
) -> None:
    patient = {"resourceType": "Patient", "id": "p1", "gender": "female"}
    with session_factory.begin() as session:
        save_resources(session, [patient, _observation("甲")], message_id=None, now=T0)
    for n, value in enumerate(["乙", "丙"], start=1):
        with session_factory.begin() as session:
            save_resources(
                session, [_observation(value)], message_id=None, now=T0 + timedelta(hours=n)
            )
    with session_factory.begin() as session:
        assert reindex(session) == 2
    with session_factory() as session:
        assert orphan_index_rows(session) == 0
        rows = session.execute(
            select(func.count()).select_from(SearchIndex).where(SearchIndex.param == "value-string")
        ).scalar_one()
        assert session.execute(select(func.count()).select_from(SearchIndex)).scalar_one() > 0
        assert rows == 1  # the replaced values' rows are gone, not orphaned


# a statement deleting rows of ``resource``: ORM/Core delete() of the table or raw SQL
_DELETES_RESOURCE = re.compile(
    r"delete\(\s*(?:Resource|_resource)\b|(?:Resource\.__table__|_resource)\.delete\(|"
    r"DELETE\s+FROM\s+\"?resource\b",
    re.IGNORECASE,
)


def test_no_code_deletes_resource_rows() -> None:
    found = [
        str(path.relative_to(ADAPTER))
        for path in ADAPTER.rglob("*.py")
        if "migrations" not in path.parts and _DELETES_RESOURCE.search(path.read_text("utf-8"))
    ]
    assert found == [], f"{found}: delete their search_index rows too (decision 0060)"

"""Migration 0016 on a database that holds data (SQLite, and PostgreSQL in the -m db pass):
the current versions' bodies leave resource_version, superseded ones stay, every version
still reads back, and a resource changed after the upgrade keeps its old body in history.
Downgrade puts the bodies back."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
from sqlalchemy import Text, column, insert, literal, table, text

from adapter.store import make_engine, migrate, read_history, read_version, save_resources
from adapter.store import session_factory as make_factory
from adapter.store.body_codec import json_bytes
from adapter.store.engine import downgrade

# the two tables as 0015 has them (the models are at head: on PostgreSQL their
# resource_key would take the next value of a sequence 0015 does not have)
_COLUMNS = ("resource_type", "id", "version_id", "last_updated", "deleted", "body")
RESOURCE_0015 = table("resource", *map(column, (*_COLUMNS, "content_hash")))
RESOURCE_VERSION_0015 = table("resource_version", *map(column, _COLUMNS))

T = [datetime(2026, 5, 3, 3, n, tzinfo=UTC) for n in range(4)]


def _body(version: int, gender: str) -> dict:
    return {
        "resourceType": "Patient",
        "id": "p1",
        "meta": {"versionId": str(version), "lastUpdated": f"2026-05-03T03:0{version}:00Z"},
        "gender": gender,
    }


def _fill_at_0015(engine) -> None:
    """Two versions of Patient/p1 and one of Patient/p2, as 0015's store wrote them (the
    current body in both tables, plain JSON text: the model's type now compresses)."""
    rows = [("p1", 1, "female", T[1]), ("p1", 2, "male", T[2]), ("p2", 1, "unknown", T[1])]
    with engine.begin() as conn:
        for rid, version, gender, moment in (rows[1], rows[2]):
            conn.execute(
                insert(RESOURCE_0015).values(
                    {
                        "resource_type": "Patient",
                        "id": rid,
                        "version_id": version,
                        "last_updated": moment,
                        "deleted": False,
                        "content_hash": "h",
                        "body": _plain(_body(version, gender)),
                    }
                )
            )
        for rid, version, gender, moment in rows:
            conn.execute(
                insert(RESOURCE_VERSION_0015).values(
                    {
                        "resource_type": "Patient",
                        "id": rid,
                        "version_id": version,
                        "last_updated": moment,
                        "deleted": False,
                        "body": _plain(_body(version, gender)),
                    }
                )
            )


def _plain(body: dict) -> object:
    return literal(orjson.dumps(body).decode(), Text())


def _stored_bodies(engine) -> dict[tuple[str, int], bytes | None]:
    """The JSON text of each history row's body, plain or compressed (migration 0017)."""
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT id, version_id, body FROM resource_version")).all()
    return {(rid, v): None if body is None else json_bytes(body) for rid, v, body in rows}


def test_0016_clears_current_bodies_keeps_superseded_and_reads_stay_whole(
    blank_database_url: str,
) -> None:
    engine = make_engine(blank_database_url)
    try:
        migrate(engine, "0015")
        _fill_at_0015(engine)
        migrate(engine, "0016")
        stored = _stored_bodies(engine)
        assert stored[("p1", 2)] is None and stored[("p2", 1)] is None
        assert orjson.loads(stored[("p1", 1)])["gender"] == "female"
        migrate(engine)  # the rest at head (0017: bodies written compressed)
        factory = make_factory(engine)
        with factory() as session:
            assert read_version(session, "Patient", "p1", 1)["gender"] == "female"
            assert read_version(session, "Patient", "p1", 2)["gender"] == "male"
            total, versions = read_history(session, "Patient", "p1")
            assert total == 2
            assert [v.body["gender"] for v in versions] == ["male", "female"]
        # a change after the upgrade supersedes version 2: its body moves into history
        with factory.begin() as session:
            save_resources(
                session,
                [{"resourceType": "Patient", "id": "p1", "gender": "other"}],
                message_id=None,
                now=T[3],
            )
        with factory() as session:
            genders = [read_version(session, "Patient", "p1", n)["gender"] for n in (1, 2, 3)]
            assert genders == ["female", "male", "other"]
        stored = _stored_bodies(engine)
        assert orjson.loads(stored[("p1", 2)])["gender"] == "male"
        assert ("p1", 3) not in stored  # the current version: the resource row (0030)

        # downgrade: every history row has its body again (0015's store reads only there)

        downgrade(engine, "0015")
        stored = _stored_bodies(engine)
        assert all(body is not None for body in stored.values())
        assert orjson.loads(stored[("p1", 3)])["gender"] == "other"
        assert orjson.loads(stored[("p2", 1)])["gender"] == "unknown"
    finally:
        engine.dispose()

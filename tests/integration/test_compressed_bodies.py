"""Resource bodies stored compressed (decision 0049, migration 0017), on SQLite and on
PostgreSQL in the -m db pass: every golden output round-trips through the column type
exactly; a store at 0016 with plain bodies, upgraded, reads the same resources, versions
and history, writes new bodies compressed, can be compacted, and downgrades to text."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import orjson
from sqlalchemy import Column, Integer, MetaData, Table, insert, select, text

from adapter.store import (
    make_engine,
    migrate,
    read_history,
    read_resource,
    read_version,
    save_resources,
)
from adapter.store import session_factory as make_factory
from adapter.store.body_codec import is_frame, json_bytes
from adapter.store.body_rewrite import rewrite_bodies
from adapter.store.body_stamps import STRIPPED
from adapter.store.engine import downgrade
from adapter.store.types import CompressedJSON

ROOT = Path(__file__).resolve().parents[2]
T = [datetime(2026, 5, 3, 3, n, tzinfo=UTC) for n in range(4)]


def _golden_resources() -> list[dict]:
    found = []
    for path in sorted(ROOT.glob("fixtures/**/*expected*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data, dict):
            found.extend(data.get("resources", []))
    return found


def test_every_golden_output_round_trips_through_the_body_type(database_url: str) -> None:
    resources = _golden_resources()
    assert len(resources) > 500
    table = Table(
        "body_round_trip",
        MetaData(),
        Column("n", Integer(), primary_key=True),
        Column("body", CompressedJSON()),
    )
    engine = make_engine(database_url)
    try:
        table.create(engine)
        with engine.begin() as conn:
            conn.execute(insert(table), [{"n": n, "body": r} for n, r in enumerate(resources)])
        with engine.connect() as conn:
            back = [row.body for row in conn.execute(select(table).order_by(table.c.n))]
            stored = conn.execute(text("SELECT body FROM body_round_trip")).scalars().all()
        assert back == resources
        # the same JSON text, key order kept, as orjson wrote it before (JSONText)
        assert [orjson.dumps(b) for b in back] == [orjson.dumps(r) for r in resources]
        assert all(is_frame(s) for s in stored)
        plain = sum(len(orjson.dumps(r)) for r in resources)
        assert sum(len(s) for s in stored) * 3 < plain  # the point of it
    finally:
        table.drop(engine, checkfirst=True)
        engine.dispose()


def _body(rid: str, version: int, gender: str) -> dict:
    return {
        "resourceType": "Patient",
        "id": rid,
        "meta": {"versionId": str(version), "lastUpdated": f"2026-05-03T03:0{version}:00Z"},
        "gender": gender,
        "name": [{"text": "张秀英"}],
    }


def _fill_at_0016(engine) -> None:
    """Patient/p1 at version 2 (version 1 in history), Patient/p2 at version 1, as 0016's
    store wrote them: plain JSON text, no body in the current versions' history rows."""
    resources = [("p1", 2, "male", T[2]), ("p2", 1, "unknown", T[1])]
    versions = [("p1", 1, "female", T[1], True), ("p1", 2, "male", T[2], False)]
    versions.append(("p2", 1, "unknown", T[1], False))
    with engine.begin() as conn:
        for rid, version, gender, moment in resources:
            conn.execute(
                text(
                    "INSERT INTO resource (resource_type, id, version_id, last_updated, "
                    "deleted, content_hash, body) VALUES ('Patient', :id, :v, :t, :d, 'h', :b)"
                ),
                {
                    "id": rid,
                    "v": version,
                    "t": moment.replace(tzinfo=None),
                    "d": False,
                    "b": orjson.dumps(_body(rid, version, gender)).decode(),
                },
            )
        for rid, version, gender, moment, kept in versions:
            conn.execute(
                text(
                    "INSERT INTO resource_version (resource_type, id, version_id, "
                    "last_updated, deleted, body) VALUES ('Patient', :id, :v, :t, :d, :b)"
                ),
                {
                    "id": rid,
                    "v": version,
                    "t": moment.replace(tzinfo=None),
                    "d": False,
                    "b": orjson.dumps(_body(rid, version, gender)).decode() if kept else None,
                },
            )


def _raw(engine, table: str) -> dict[tuple[str, int], object]:
    version = "version_id" if table == "resource_version" else "0"
    with engine.connect() as conn:
        rows = conn.execute(text(f"SELECT id, {version}, body FROM {table}")).all()
    return {(rid, v): body for rid, v, body in rows}


def _reads(factory) -> dict[str, object]:
    with factory() as session:
        total, history = read_history(session, "Patient", "p1")
        return {
            "p1": read_resource(session, "Patient", "p1"),
            "p2": read_resource(session, "Patient", "p2"),
            "p1/1": read_version(session, "Patient", "p1", 1),
            "p1/2": read_version(session, "Patient", "p1", 2),
            "history": (total, [(v.version_id, v.body) for v in history]),
        }


def test_0017_reads_plain_bodies_writes_frames_compacts_and_downgrades(
    blank_database_url: str,
) -> None:
    engine = make_engine(blank_database_url)
    try:
        migrate(engine, "0016")
        _fill_at_0016(engine)
        expected = {
            "p1": _body("p1", 2, "male"),
            "p2": _body("p2", 1, "unknown"),
            "p1/1": _body("p1", 1, "female"),
            "p1/2": _body("p1", 2, "male"),
            "history": (2, [(2, _body("p1", 2, "male")), (1, _body("p1", 1, "female"))]),
        }
        migrate(engine)  # 0017
        factory = make_factory(engine)
        assert _reads(factory) == expected  # old plain bodies, read as they are
        assert not any(is_frame(b) for b in _raw(engine, "resource").values())

        # a new version: its body is written compressed; version 2's plain body moves
        # into history as it was stored
        with factory.begin() as session:
            save_resources(
                session,
                [{"resourceType": "Patient", "id": "p1", "gender": "other"}],
                message_id=None,
                now=T[3],
            )
        assert _compressed(_raw(engine, "resource")[("p1", 0)])
        history_rows = _raw(engine, "resource_version")
        # the current version 3 has no history row (0030)
        assert not is_frame(history_rows[("p1", 2)]) and ("p1", 3) not in history_rows
        with factory() as session:
            genders = [read_version(session, "Patient", "p1", n)["gender"] for n in (1, 2, 3)]
            assert genders == ["female", "male", "other"]
            assert read_version(session, "Patient", "p1", 2) == _body("p1", 2, "male")
        now = _reads(factory)

        # compact: every old body compressed in place, the same answers
        with engine.begin() as conn:
            done = sum(rewrite_bodies(conn, t, compress=True, batch=2) for t in _TABLES)
        assert done == 3  # p2 and the two plain history bodies of p1; p1's row was a frame
        every = [*_raw(engine, "resource").values(), *_raw(engine, "resource_version").values()]
        assert all(_compressed(b) for b in every if b is not None)
        assert _reads(factory) == now

        # downgrade: plain JSON text again, in a text column on PostgreSQL
        downgrade(engine, "0016")
        for table in _TABLES:
            for body in _raw(engine, table).values():
                assert body is None or isinstance(body, str)
        assert orjson.loads(_raw(engine, "resource")[("p1", 0)])["gender"] == "other"
        assert orjson.loads(_raw(engine, "resource_version")[("p1", 2)]) == _body("p1", 2, "male")
        assert json_bytes(_raw(engine, "resource")[("p2", 0)]) == orjson.dumps(expected["p2"])
    finally:
        engine.dispose()


_TABLES = ("resource", "resource_version")


def _compressed(stored: bytes | str) -> bool:
    """A frame, whole or (since 0052, decision 0128) after the marker of a body stored
    without its stamps: STRIPPED, or _WITH_META and a 2-byte offset."""
    if isinstance(stored, str):
        return False
    if stored[:1] == bytes((STRIPPED,)):
        return is_frame(stored[1:])
    if stored[:1] == b"\x02":
        return is_frame(stored[3:])
    return is_frame(stored)

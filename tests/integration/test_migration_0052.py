"""Migration 0052 (decision 0128) on a database that holds data (SQLite, and PostgreSQL in
the -m db pass): bodies stored without their id and meta stamps.

At head, resources of several shapes are saved and some changed (their old versions go to
the history, stripped bytes copied by SQL). Down to 0051 no stored body is stripped and
each one's stored JSON text (what an adapter before 0128 reads: a frame, decompressed) is
the exact text every read gave at head. Up again every read still gives those bytes, and a
new save stores stripped bodies again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Engine, text

from adapter.store import make_engine, migrate, read_history, read_resource, save_resources
from adapter.store import session_factory as make_factory
from adapter.store.body_codec import is_frame, json_bytes
from adapter.store.engine import downgrade

T0 = datetime(2026, 12, 6, 8, 0, 0, 250999, tzinfo=UTC)
T1 = T0 + timedelta(minutes=5, microseconds=3)


def _resources(n: int, changed: bool) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i in range(n):
        meta = {"source": f"urn:src#{i}", "security": [{"code": "N"}]} if i % 2 else None
        body: dict[str, Any] = {"resourceType": "Observation", "id": f"o{i}", "status": "final"}
        if meta:
            body["meta"] = meta
        body["valueString"] = f"v{i}-{'new' if changed and i % 3 == 0 else 'old'}"
        out.append(body)
    out.append({"resourceType": "Basic", "active": True, "id": "whole"})  # id not second
    return out


def _reads(engine: Engine) -> dict[str, list[bytes]]:
    """Every version of every resource as the store's reads give it (JSON bytes)."""
    out: dict[str, list[bytes]] = {}
    with make_factory(engine)() as session:
        ids = session.execute(text("SELECT resource_type, id FROM resource")).all()
        for rtype, rid in ids:
            current = orjson.dumps(read_resource(session, rtype, rid))
            _, versions = read_history(session, rtype, rid)
            out[f"{rtype}/{rid}"] = [current] + [orjson.dumps(v.body) for v in versions]
    return out


def _stored(engine: Engine) -> dict[str, list[bytes]]:
    """The bodies as stored (raw bytes), resource then history rows newest first."""
    out: dict[str, list[bytes]] = {}
    with engine.connect() as conn:
        for table, order in (("resource", ""), ("resource_version", " ORDER BY version_id DESC")):
            rows = conn.execute(
                text(f"SELECT resource_type, id, body FROM {table} WHERE body IS NOT NULL{order}")
            )
            for rtype, rid, body in rows:
                out.setdefault(f"{rtype}/{rid}", []).append(
                    body.encode() if isinstance(body, str) else bytes(body)
                )
    return out


def test_0052_stripped_bodies_written_whole_and_back(blank_database_url: str) -> None:
    engine = make_engine(blank_database_url)
    try:
        migrate(engine)
        with make_factory(engine).begin() as session:
            save_resources(session, _resources(12, False), message_id=None, now=T0)
        with make_factory(engine).begin() as session:
            save_resources(session, _resources(12, True), message_id=None, now=T1)
        reads = _reads(engine)
        stored = _stored(engine)
        assert len(reads["Observation/o0"]) == 3  # current, then history v2, v1
        stripped = [b for bodies in stored.values() for b in bodies if b[:1] in (b"\x01", b"\x02")]
        assert len(stripped) == 12 + 4  # every Observation, and the 4 changed ones' v1
        assert all(b[:1] not in (b"\x01", b"\x02") for b in stored["Basic/whole"])

        downgrade(engine, "0051")
        down = _stored(engine)
        assert all(is_frame(b) for bodies in down.values() for b in bodies)
        for key, bodies in down.items():
            # an adapter before 0128 reads the frame's text: the bytes every read gave
            # (a history page starts with the current version, the resource row)
            assert [json_bytes(b) for b in bodies] == [reads[key][0], *reads[key][2:]], key
        assert down["Basic/whole"] == stored["Basic/whole"]

        migrate(engine)
        assert _reads(engine) == reads
        assert all(
            b[:1] not in (b"\x01", b"\x02") for bodies in _stored(engine).values() for b in bodies
        )
        with make_factory(engine).begin() as session:
            saved = save_resources(
                session,
                [{"resourceType": "Observation", "id": "later", "status": "final"}],
                message_id=None,
                now=T1,
            )[0]
        assert _stored(engine)["Observation/later"][0][:1] in (b"\x01", b"\x02")
        assert _reads(engine)["Observation/later"] == [orjson.dumps(saved.body)] * 2
    finally:
        engine.dispose()

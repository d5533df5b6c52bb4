"""Resource bodies stored without their id and meta stamps (decision 0128): every read
gives the bytes a client got before (the body ``save_resources`` stamped), on both
databases; other shapes are stored whole; a read that bypasses the column fails loudly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from adapter.store import (
    Resource,
    ResourceVersion,
    read_history,
    read_resource,
    read_version,
    save_resources,
    search,
)
from adapter.store.body_codec import is_frame
from adapter.store.body_rewrite import rewrite_bodies
from adapter.store.body_stamps import (
    StampedBody,
    StampsMissingError,
    read_body,
    stripped,
    with_stamps_sql,
)
from adapter.store.history import HistoryQuery, read_history_page

T0 = datetime(2026, 5, 3, 2, 0, 0, 123456, tzinfo=UTC)
T1 = T0 + timedelta(hours=1, microseconds=999)


def patient(pid: str = "p1", **extra: object) -> dict:
    return {
        "resourceType": "Patient",
        "id": pid,
        "gender": "female",
        "name": [{"family": "Zhang", "given": ["Wei"]}],
        **extra,
    }


SHAPES = {
    "plain": patient("p-plain"),
    # meta of its own before the stamps: source, security, tag
    "meta": patient(
        "p-meta",
        meta={
            "source": "urn:oid:1.2.3#msg-1",
            "security": [{"system": "http://x", "code": "R"}],
            "tag": [{"code": "t"}],
        },
    ),
    # meta placed after other keys in the input: _stamped moves it after id
    "meta-late": {
        "resourceType": "Patient",
        "id": "p-late",
        "active": True,
        "meta": {"source": "s"},
    },
    # stamps already in meta, in front: stored whole (not the one shape stripped)
    "stamps-first": patient("p-first", meta={"versionId": "7", "lastUpdated": "x", "source": "s"}),
    # id not second: stored whole
    "id-late": {"resourceType": "Patient", "active": True, "id": "p-idlate"},
    "dotted-id": patient("p.dot-1"),
}
WHOLE = {"p-first", "p-idlate"}


def _raw(session: Session, table: str, rid: str) -> list[bytes]:
    rows = session.execute(
        text(f"SELECT body FROM {table} WHERE id = :i AND body IS NOT NULL ORDER BY 1"), {"i": rid}
    ).scalars()
    return [r if isinstance(r, str) else bytes(r) for r in rows]


def _dumps(body: object) -> bytes:
    return orjson.dumps(body)


def test_every_read_gives_the_stamped_bytes(session_factory: sessionmaker) -> None:
    with session_factory.begin() as session:
        saved = save_resources(session, list(SHAPES.values()), message_id=None, now=T0)
    bodies = {s.id: s.body for s in saved}
    with session_factory() as session:
        for rid, body in bodies.items():
            stored = _raw(session, "resource", rid)[0]
            assert (stored[:1] in (b"\x01", b"\x02")) is (rid not in WHOLE), rid
            assert _dumps(read_resource(session, "Patient", rid)) == _dumps(body)
            assert _dumps(read_version(session, "Patient", rid, 1)) == _dumps(body)
            orm = session.get(Resource, ("Patient", rid))
            assert orm is not None and _dumps(orm.body) == _dumps(body)
        total, page = search(session, "Patient", [], count=50)
        assert total == len(bodies)
        assert sorted(map(_dumps, page)) == sorted(map(_dumps, bodies.values()))
        _, versions = read_history_page(session, HistoryQuery("Patient", None, count=50))
        assert sorted(_dumps(v.body) for v in versions) == sorted(map(_dumps, bodies.values()))


def test_superseded_versions_read_back_from_the_history(session_factory: sessionmaker) -> None:
    """The history row is copied from the resource row by SQL (stripped bytes and all) and
    rebuilt from its own row's values."""
    with session_factory.begin() as session:
        v1 = save_resources(session, [SHAPES["meta"]], message_id=None, now=T0)[0].body
    changed = {**SHAPES["meta"], "gender": "male"}
    with session_factory.begin() as session:
        v2 = save_resources(session, [changed], message_id=None, now=T1)[0].body
    assert v1["meta"]["versionId"] == "1" and v2["meta"]["versionId"] == "2"
    assert v2["meta"]["lastUpdated"] == "2026-05-03T03:00:00.124+00:00"
    with session_factory() as session:
        assert _raw(session, "resource_version", "p-meta")[0][:1] in (b"\x01", b"\x02")
        assert _dumps(read_version(session, "Patient", "p-meta", 1)) == _dumps(v1)
        assert _dumps(read_version(session, "Patient", "p-meta", 2)) == _dumps(v2)
        _, versions = read_history(session, "Patient", "p-meta")
        assert [_dumps(v.body) for v in versions] == [_dumps(v2), _dumps(v1)]
        old = session.scalars(select(ResourceVersion.body).where(ResourceVersion.id == "p-meta"))
        assert [_dumps(b) for b in old] == [_dumps(v1)]


def test_a_read_without_the_rows_values_fails_loudly(session_factory: sessionmaker) -> None:
    with session_factory.begin() as session:
        body = save_resources(session, [SHAPES["plain"]], message_id=None, now=T0)[0].body
    with session_factory() as session:
        stored = _raw(session, "resource", "p-plain")[0]
        with pytest.raises(StampsMissingError):
            read_body(stored)
        dialect = session.get_bind().dialect.name
        sql = f"SELECT {with_stamps_sql(dialect, 'r')} AS body FROM resource r WHERE id = 'p-plain'"
        row = session.execute(text(sql)).scalar_one()
        assert _dumps(read_body(row)) == _dumps(body)


def test_compact_leaves_stripped_bodies_alone(session_factory: sessionmaker) -> None:
    with session_factory.begin() as session:
        body = save_resources(session, [SHAPES["meta"]], message_id=None, now=T0)[0].body
    with session_factory.begin() as session:
        before = _raw(session, "resource", "p-meta")
        assert rewrite_bodies(session.connection(), "resource", compress=True) == 0
        assert _raw(session, "resource", "p-meta") == before
    with session_factory() as session:
        assert _dumps(read_resource(session, "Patient", "p-meta")) == _dumps(body)


def test_only_the_stamped_shape_is_stripped() -> None:
    stamped = StampedBody(
        resourceType="Patient", id="a", meta={"source": "s", "versionId": "1", "lastUpdated": "t"}
    )
    made = stripped(stamped)
    assert made is not None and made[:1] == b"\x02" and is_frame(made[3:])  # offset first
    alone = stripped(
        StampedBody(resourceType="Patient", id="a", meta={"versionId": "1", "lastUpdated": "t"})
    )
    assert alone is not None and alone[:1] == b"\x01" and is_frame(alone[1:])
    assert read_body(b"a 1 0 " + alone) == {
        "resourceType": "Patient", "id": "a",
        "meta": {"versionId": "1", "lastUpdated": "1970-01-01T00:00:00.000+00:00"},
    }  # fmt: skip
    assert stripped(StampedBody(resourceType="Patient", id="a b", meta=stamped["meta"])) is None
    assert stripped(StampedBody(resourceType="Patient", id='a"b', meta=stamped["meta"])) is None
    assert stripped(StampedBody(resourceType='Pa"t', id="a", meta=stamped["meta"])) is None
    assert stripped(StampedBody(resourceType="Patient", id="a", meta={"versionId": "1"})) is None
    assert stripped(StampedBody(resourceType="Patient", id="a")) is None
    swapped = {"lastUpdated": "t", "versionId": "1"}
    assert stripped(StampedBody(resourceType="Patient", id="a", meta=swapped)) is None

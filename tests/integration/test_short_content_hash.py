"""resource.content_hash as the first 128 bits of the sha256 (16 bytes stored, decision
0092), on both databases: a new row stores 16 bytes; a row written before (32 bytes, the
whole sha256) reads as its first 16, so the same content saved again writes no version
and a changed one does."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import orjson
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from adapter.store import make_engine, migrate, save_resources
from adapter.store import session_factory as make_factory
from adapter.store.engine import downgrade
from adapter.store.types import short_digest_bytes, short_digest_text

T0 = datetime(2026, 12, 6, 2, 0, tzinfo=UTC)
PATIENT = {"resourceType": "Patient", "id": "p1", "gender": "female"}


def _stored(engine: Engine) -> tuple[int, bytes]:
    with engine.connect() as conn:
        version, stored = conn.execute(
            text("SELECT version_id, content_hash FROM resource WHERE id = 'p1'")
        ).one()
    return version, bytes(stored)


def _save(factory: sessionmaker[Session], resource: dict[str, object], at: datetime) -> None:
    with factory.begin() as session:
        save_resources(session, [resource], message_id=None, now=at)


def test_a_new_row_stores_16_bytes(engine: Engine, session_factory: sessionmaker[Session]) -> None:
    _save(session_factory, PATIENT, T0)
    canonical = orjson.dumps(PATIENT, option=orjson.OPT_SORT_KEYS)
    assert _stored(engine) == (1, hashlib.sha256(canonical).digest()[:16])


def test_a_row_stored_with_the_whole_sha256_still_tells_no_change(
    engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    _save(session_factory, PATIENT, T0)
    whole = hashlib.sha256(orjson.dumps(PATIENT, option=orjson.OPT_SORT_KEYS)).digest()
    with engine.begin() as conn:  # as a row written before decision 0092 holds it
        conn.execute(text("UPDATE resource SET content_hash = :h"), {"h": whole})
    assert _stored(engine) == (1, whole)

    _save(session_factory, PATIENT, T0 + timedelta(seconds=1))  # the same content
    assert _stored(engine) == (1, whole)  # no new version, the row untouched

    _save(session_factory, {**PATIENT, "gender": "male"}, T0 + timedelta(seconds=2))
    version, stored = _stored(engine)
    assert (version, len(stored)) == (2, 16)


def test_the_stored_forms() -> None:
    whole = hashlib.sha256(b"x").hexdigest()
    assert short_digest_bytes(whole[:32]) == bytes.fromhex(whole[:32])
    assert short_digest_bytes(whole) == bytes.fromhex(whole[:32])  # a whole one: its half
    assert short_digest_bytes("h") == b"h"
    assert short_digest_bytes(whole[:32].upper()) == whole[:32].upper().encode()
    assert short_digest_text(bytes.fromhex(whole)) == whole[:32]
    assert short_digest_text(bytes.fromhex(whole[:32])) == whole[:32]
    assert short_digest_text(whole) == whole[:32]  # SQLite: an old TEXT value
    assert short_digest_text(b"h") == "h"
    assert short_digest_text(None) is None and short_digest_bytes(None) is None


def test_0040_down_pads_the_short_hashes_to_the_32_bytes_of_before(
    blank_database_url: str,
) -> None:
    engine = make_engine(blank_database_url)
    try:
        migrate(engine)
        _save(make_factory(engine), PATIENT, T0)
        short = _stored(engine)[1]
        assert len(short) == 16
        downgrade(engine, "0038")
        assert _stored(engine) == (1, short + bytes(16))
        downgrade(engine, "0030")  # 0033's downgrade reads a 32-byte digest as hex
        with engine.connect() as conn:
            text_hash = conn.execute(text("SELECT content_hash FROM resource")).scalar_one()
        assert text_hash == (short + bytes(16)).hex()
    finally:
        engine.dispose()

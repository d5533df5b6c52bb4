"""Migration 0044 on a database that holds data (SQLite, and PostgreSQL in the -m db pass):
on PostgreSQL ``resource.patient_key`` becomes ``bytea`` (decision 0105): a
``Patient/<canonical uuid>`` its UUID's 16 bytes, any other text its UTF-8 bytes (after a
NUL byte when 16 long); SQLite keeps its text.

Resources saved at head with patient keys of every form are taken down to 0043 (the
texts back, exactly) and up again (the stored bytes are ``key_bytes`` of each text, the
model reads the same texts, a query by key finds the same rows, a save after the upgrade
writes the same form as the migration)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, LargeBinary, literal, select, text, type_coerce

from adapter.store import make_engine, migrate, save_resources
from adapter.store import session_factory as make_factory
from adapter.store.engine import downgrade
from adapter.store.models import Resource
from adapter.store.patient_key_form import key_bytes, key_text, stored_key
from tests.api.search_fixtures import T0

_UUID = str(uuid.UUID(int=0x1234_5678_9ABC_DEF0_1234_5678_9ABC_DEF0))
KEYS = [
    f"Patient/{_UUID}",  # 16 bytes
    f"Patient/{_UUID.upper()}",  # not canonical: its text
    "Patient/p1",  # a client's id
    "Patient/abcdefgh",  # 16 characters: a NUL before it
    "Patient/病人-1",  # not ASCII
]


def _observation(n: int, patient: str) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": f"o{n}",
        "status": "final",
        "code": {"text": "x"},
        "subject": {"reference": patient},
    }


def _save(engine: Engine, start: int) -> None:
    with make_factory(engine).begin() as session:
        save_resources(
            session,
            [_observation(start + n, key) for n, key in enumerate(KEYS)],
            message_id=None,
            now=T0 + timedelta(days=start),
        )


def _read(engine: Engine) -> dict[str, str | None]:
    with make_factory(engine)() as session:
        rows = session.execute(select(Resource.id, Resource.patient_key)).all()
        return {rid: key for rid, key in rows}


def _plain(key: Any) -> Any:
    return key if isinstance(key, str) or key is None else bytes(key)


def _stored(engine: Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT id, patient_key FROM resource")).all()
        return {rid: _plain(key) for rid, key in rows}


def _found(engine: Engine, key: str) -> list[str]:
    with make_factory(engine)() as session:
        return sorted(
            session.execute(select(Resource.id).where(Resource.patient_key == key)).scalars()
        )


def test_key_forms_read_back() -> None:
    for key in [*KEYS, "\x00x", "Patient/", "Group/" + _UUID]:
        stored = key_bytes(key)
        assert key_text(stored) == key
        assert (len(stored) == 16) == (key == KEYS[0])
    assert key_bytes(KEYS[0]) == uuid.UUID(_UUID).bytes


def test_0044_patient_keys_in_bytes_and_back(blank_database_url: str) -> None:
    engine = make_engine(blank_database_url)
    pg = engine.dialect.name == "postgresql"
    try:
        migrate(engine)
        _save(engine, 0)
        expected = _read(engine)
        assert sorted(v for v in expected.values() if v) == sorted(KEYS)
        found = {key: _found(engine, key) for key in KEYS}
        assert all(len(ids) == 1 for ids in found.values())

        downgrade(engine, "0043")
        stored = _stored(engine)
        assert stored == expected  # the texts, exactly (both databases)

        migrate(engine)
        assert _read(engine) == expected
        assert {key: _found(engine, key) for key in KEYS} == found
        stored = _stored(engine)
        if pg:
            assert stored == {rid: key_bytes(key) for rid, key in expected.items() if key}
        else:
            assert stored == expected
        _save(engine, 10)  # written by the code: the same forms as the migration's
        after = _stored(engine)
        for n, key in enumerate(KEYS):
            assert after[f"o{10 + n}"] == (key_bytes(key) if pg else key)
        assert {key: len(_found(engine, key)) for key in KEYS} == dict.fromkeys(KEYS, 2)
    finally:
        engine.dispose()


def test_stored_key_in_sql_is_the_column_s_form(database_url: str) -> None:
    """``stored_key`` (the keys visibility makes in SQL) gives the bytes the column binds
    on PostgreSQL (the text on SQLite), reads back as the key, and finds the rows saved
    under each key."""
    engine = make_engine(database_url)
    pg = engine.dialect.name == "postgresql"
    try:
        _save(engine, 20)
        with engine.connect() as conn:
            for key in KEYS:
                made = stored_key(literal("Patient/") + literal(key.removeprefix("Patient/")))
                assert conn.execute(select(made)).scalar_one() == key  # through the type
                raw = conn.execute(select(type_coerce(made, LargeBinary))).scalar_one()
                assert _plain(raw) == (key_bytes(key) if pg else key)
                found = conn.execute(
                    select(Resource.id).where(Resource.patient_key.in_(select(made)))
                ).scalars()
                assert list(found) == [f"o{20 + KEYS.index(key)}"]
    finally:
        engine.dispose()

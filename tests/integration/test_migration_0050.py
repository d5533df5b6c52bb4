"""Migration 0050 (decision 0123) on a database that holds data (SQLite, and PostgreSQL in
the -m db pass): the patient index's ids, ``care_relationship.person_id`` and
``resource.patient_key`` in 16 bytes on PostgreSQL (SQLite: nothing changes).

Records under UUIDs, a client's id and a 16-character id written at head; down to the
previous revision every column holds its text again (read raw); up again every value reads
the same, a UUID takes 16 bytes, and what a facility may see (visibility compares these
columns) and a person's ids (``keys_of``) are what they were."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from alembic.script import ScriptDirectory
from sqlalchemy import Engine, LargeBinary, String, insert, literal, select, text, type_coerce

from adapter.identity.persons import keys_of
from adapter.store import care, make_engine, migrate, save_resources
from adapter.store import session_factory as make_factory
from adapter.store.engine import alembic_config, downgrade
from adapter.store.id_forms import key_bytes, key_of_text_id
from adapter.store.identity_tables import (
    IdentityBlock,
    IdentityHistory,
    IdentityKey,
    IdentityMerge,
    IdentityRecord,
)
from adapter.store.models import CareRelationship, Resource
from adapter.store.visibility import Visibility, is_visible

T0 = datetime(2026, 12, 6, 8, tzinfo=UTC)
PERSON = str(uuid.UUID(int=0xA1))
RECORDS = (
    str(uuid.UUID(int=0xB2)),
    "p1",
    "abcdefghijklmnop",
    "Upper-Case-1",
    str(uuid.UUID(int=1 << 120)),
)
OTHER = str(uuid.UUID(int=0xC3))  # a record of another person, in no care
COLUMNS = {
    IdentityRecord: ("patient_id", "person_id"),
    IdentityKey: ("patient_id",),
    IdentityHistory: ("patient_id", "person_id", "previous_person_id"),
    IdentityBlock: ("patient_id", "other_id"),
    IdentityMerge: ("survivor_id", "merged_id"),
    CareRelationship: ("person_id",),
    Resource: ("patient_key",),
}


def _write(engine: Engine) -> None:
    with make_factory(engine).begin() as session:
        for n, record in enumerate((*RECORDS, OTHER)):
            person = OTHER if record == OTHER else PERSON
            session.execute(
                insert(IdentityRecord.__table__).values(
                    patient_id=record, person_id=person, facility_id="f1", link_kind="auto",
                    rule_version=1, rule="r", score=1.0, evidence={}, features={},
                    created_at=T0, updated_at=T0,
                )
            )  # fmt: skip
            session.execute(
                insert(IdentityKey.__table__).values(key_hash=f"{n:064x}", patient_id=record)
            )
            session.execute(
                insert(IdentityHistory.__table__).values(
                    at=T0, action="link", patient_id=record, person_id=person,
                    previous_person_id=None if n else OTHER, actor="test",
                )
            )  # fmt: skip
            resources: list[dict[str, Any]] = [
                {"resourceType": "Patient", "id": record},
                {"resourceType": "Observation", "id": f"o{n}",
                 "subject": {"reference": f"Patient/{record}"}},
            ]  # fmt: skip
            save_resources(session, resources, message_id=None, now=T0, facility_id="f2")
        session.execute(
            insert(IdentityBlock.__table__).values(
                patient_id=RECORDS[0], other_id=OTHER, actor="test", at=T0
            )
        )
        session.execute(
            insert(IdentityMerge.__table__).values(
                survivor_id=PERSON, merged_id="p1", at=T0, actor="test", snapshot={}
            )
        )
        care.register(session, PERSON, "f1", at=T0, detail="test")


def _read(engine: Engine) -> dict[str, list[Any]]:
    """Every converted column's values, read through the models (texts at head)."""
    with make_factory(engine)() as session:
        return {
            f"{model.__tablename__}.{c}": sorted(
                session.execute(select(model.__table__.c[c])).scalars(), key=str
            )
            for model, columns in COLUMNS.items()
            for c in columns
        }


def _raw(engine: Engine) -> dict[str, list[Any]]:
    """The same columns read raw (the previous revision holds texts)."""
    with engine.connect() as conn:
        return {
            f"{model.__tablename__}.{c}": sorted(
                conn.execute(text(f"SELECT {c} FROM {model.__tablename__}")).scalars(), key=str
            )
            for model, columns in COLUMNS.items()
            for c in columns
        }


def _answers(engine: Engine) -> tuple[dict[tuple[str, str], bool], set[str]]:
    with make_factory(engine)() as session:
        visible = {
            (facility, rid): is_visible(session, Visibility(facility, T0), "Observation", rid)
            for facility in ("f1", "f3")
            for rid in (f"o{n}" for n in range(len(RECORDS) + 1))
        }
        return visible, keys_of(session, RECORDS[1])


def _previous() -> str:
    down = ScriptDirectory.from_config(alembic_config()).get_revision("0050").down_revision
    assert isinstance(down, str)
    return down


def test_0050_index_ids_to_bytes_and_back(blank_database_url: str) -> None:
    engine = make_engine(blank_database_url)
    try:
        migrate(engine)
        _write(engine)
        values, answers = _read(engine), _answers(engine)
        assert f"Patient/{RECORDS[2]}" in values["resource.patient_key"]
        visible, keys = answers
        assert all(visible[("f1", f"o{n}")] for n in range(len(RECORDS)))
        assert not visible[("f1", f"o{len(RECORDS)}")] and not any(
            v for (f, _), v in visible.items() if f == "f3"
        )
        assert keys == {PERSON, *RECORDS}
        if engine.dialect.name == "postgresql":
            with engine.connect() as conn:
                sizes = conn.execute(
                    text("SELECT octet_length(patient_key) FROM resource WHERE id = :i"),
                    {"i": RECORDS[0]},
                ).scalar_one()
            assert sizes == 16
            with engine.connect() as conn:  # the console's key of a text id, in SQL
                for record in RECORDS:
                    made = type_coerce(key_of_text_id(literal(record, String)), LargeBinary)
                    stored = conn.execute(select(made)).scalar_one()
                    assert bytes(stored) == key_bytes(f"Patient/{record}")

        downgrade(engine, _previous())
        assert _raw(engine) == values

        migrate(engine)
        assert _read(engine) == values
        assert _answers(engine) == answers
    finally:
        engine.dispose()

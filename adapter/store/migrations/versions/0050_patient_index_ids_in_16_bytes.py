"""PostgreSQL: the patient index's ids and ``resource.patient_key`` in 16 bytes (decision 0123).

Every column visibility compares gets one stored form: ``UuidText``'s (a UUID's 16 bytes;
any other id its UTF-8 bytes, after a NUL byte when they are 16 long). The identity
tables' record and person ids, ``care_relationship.person_id``, and ``resource.patient_key``
as the bare id (``Patient/`` implied; a key that is not ``Patient/<id>`` is kept as 0x01
and its text, after a NUL byte when 16 bytes long). ``ALTER COLUMN … TYPE bytea USING``
rewrites each table and builds its indexes again; ``ANALYZE`` afterwards. Downgrade: the
texts back, exactly.

SQLite: nothing changes (the columns keep their text).

Revision ID: 0050
Revises: 0048
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0050"
down_revision: str | Sequence[str] | None = "0048"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Plain text on purpose: a migration must not change when application code does.
_UUID = "'^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'"
_IDS = {
    "identity_record": ("patient_id", "person_id"),
    "identity_key": ("patient_id",),
    "identity_history": ("patient_id", "person_id", "previous_person_id"),
    "identity_review": ("patient_id", "other_id"),
    "identity_block": ("patient_id", "other_id"),
    "identity_merge": ("survivor_id", "merged_id"),
    "care_relationship": ("person_id",),
}
_ID_LENGTH = 64
_KEY_LENGTH = 129  # "Patient/" and an id: the column's declared length before


def _to_bytes(value: str) -> str:
    """``UuidText``'s stored form of a text expression."""
    raw = f"convert_to({value}, 'UTF8')"
    return (
        f"CASE WHEN {value} ~ {_UUID} THEN decode(replace({value}, '-', ''), 'hex') "
        f"WHEN octet_length({raw}) = 16 THEN '\\x00'::bytea || {raw} ELSE {raw} END"
    )


def _to_text(value: str) -> str:
    """``UuidText``'s reading of a bytea expression."""
    hexed = f"encode({value}, 'hex')"
    return (
        f"CASE WHEN octet_length({value}) = 16 THEN substr({hexed}, 1, 8) || '-' || "
        f"substr({hexed}, 9, 4) || '-' || substr({hexed}, 13, 4) || '-' || "
        f"substr({hexed}, 17, 4) || '-' || substr({hexed}, 21, 12) "
        f"WHEN octet_length({value}) > 0 AND get_byte({value}, 0) = 0 "
        f"THEN convert_from(substr({value}, 2), 'UTF8') "
        f"ELSE convert_from({value}, 'UTF8') END"
    )


def _key_to_bytes() -> str:
    """The bare id's form for ``Patient/<id>``; any other key 0x01 and its text, after a NUL
    byte when that is 16 bytes long (16 bytes are always a UUID)."""
    other = "'\\x01'::bytea || convert_to(patient_key, 'UTF8')"
    return (
        f"CASE WHEN patient_key LIKE 'Patient/%' THEN {_to_bytes('substr(patient_key, 9)')} "
        f"WHEN octet_length({other}) = 16 THEN '\\x00'::bytea || {other} ELSE {other} END"
    )


def _key_to_text() -> str:
    rest = "CASE WHEN get_byte(patient_key, 0) = 0 THEN substr(patient_key, 2) ELSE patient_key END"
    return (
        "CASE WHEN octet_length(patient_key) = 0 THEN 'Patient/' "
        f"WHEN octet_length(patient_key) = 16 THEN 'Patient/' || {_to_text('patient_key')} "
        f"WHEN octet_length({rest}) > 0 AND get_byte({rest}, 0) = 1 "
        f"THEN convert_from(substr({rest}, 2), 'UTF8') "
        f"ELSE 'Patient/' || convert_from({rest}, 'UTF8') END"
    )


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, columns in _IDS.items():
        alters = ", ".join(f"ALTER COLUMN {c} TYPE bytea USING {_to_bytes(c)}" for c in columns)
        op.execute(f"ALTER TABLE {table} {alters}")
    op.execute(f"ALTER TABLE resource ALTER COLUMN patient_key TYPE bytea USING {_key_to_bytes()}")
    for table in (*_IDS, "resource"):
        op.execute(f"ANALYZE {table}")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, columns in _IDS.items():
        alters = ", ".join(
            f"ALTER COLUMN {c} TYPE varchar({_ID_LENGTH}) USING {_to_text(c)}" for c in columns
        )
        op.execute(f"ALTER TABLE {table} {alters}")
    op.execute(
        f"ALTER TABLE resource ALTER COLUMN patient_key TYPE varchar({_KEY_LENGTH}) "
        f"USING {_key_to_text()}"
    )
    for table in (*_IDS, "resource"):
        op.execute(f"ANALYZE {table}")

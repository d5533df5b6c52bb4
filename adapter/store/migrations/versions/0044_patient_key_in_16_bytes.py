"""PostgreSQL: ``resource.patient_key`` as ``bytea``, a ``Patient/<uuid>`` in its UUID's 16
bytes (decision 0105; adapter/store/patient_key_form.py is the column's type).

Upgrade: the column's type changed in place (one rewrite of ``resource``, its indexes made
again): a ``Patient/`` followed by a canonical UUID (lowercase, hyphenated) becomes the
UUID's 16 bytes; any other text its UTF-8 bytes, after a NUL byte when they are 16 long (a
PostgreSQL text holds no NUL, so no text starts with one). Then ``ANALYZE resource`` when
it holds rows. Downgrade: the same texts back (``varchar(129)``). SQLite: nothing changes.

Revision ID: 0044
Revises: 0043
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0044"
down_revision: str | Sequence[str] | None = "0043"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Plain SQL on purpose: a migration must not change when application code does. The same
# forms as adapter/store/patient_key_form.key_bytes / key_text
# (tests/integration/test_migration_0044.py compares them)
_UUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_TO_BYTES = (
    f"CASE WHEN patient_key ~ '^Patient/{_UUID}$'"
    " THEN decode(replace(substr(patient_key, 9), '-', ''), 'hex')"
    " WHEN octet_length(patient_key) = 16 THEN '\\x00'::bytea || convert_to(patient_key, 'UTF8')"
    " ELSE convert_to(patient_key, 'UTF8') END"
)
_TO_TEXT = (
    "CASE WHEN octet_length(patient_key) = 16"
    " THEN 'Patient/' || CAST(CAST(encode(patient_key, 'hex') AS uuid) AS text)"
    " WHEN octet_length(patient_key) > 0 AND get_byte(patient_key, 0) = 0"
    " THEN convert_from(substr(patient_key, 2), 'UTF8')"
    " ELSE convert_from(patient_key, 'UTF8') END"
)


def _analyze() -> None:
    op.execute(
        "DO $$ BEGIN IF EXISTS (SELECT 1 FROM resource) THEN ANALYZE resource; END IF; END $$"
    )


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"ALTER TABLE resource ALTER COLUMN patient_key TYPE bytea USING {_TO_BYTES}")
    _analyze()


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"ALTER TABLE resource ALTER COLUMN patient_key TYPE varchar(129) USING {_TO_TEXT}")
    _analyze()

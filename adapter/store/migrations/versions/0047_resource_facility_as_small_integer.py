"""``resource.facility_id`` (the facility's name, ~25 bytes a row) becomes ``facility_key``,
a small integer naming a row of the new ``facility_name`` table (decision 0118; interned
as ``outbox_destination`` is, adapter/store/facilities.py). Both databases.

* PostgreSQL: the column is renamed and changed in place (``ALTER ... TYPE smallint
  USING`` a CASE of the store's facilities): one rewrite of ``resource``, which builds its
  indexes again, and no dead rows left behind.
* SQLite: ``facility_key`` added, filled from ``facility_name``, ``facility_id`` dropped
  (``ALTER TABLE DROP COLUMN`` copies the rows once; no index names the column).

Downgrade: the names back in ``facility_id``, ``facility_name`` dropped.

Revision ID: 0047
Revises: 0045
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0047"
down_revision: str | Sequence[str] | None = "0046"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _literal(name: str) -> str:
    return "'" + name.replace("'", "''") + "'"


def _facilities() -> list[tuple[int, str]]:
    rows = op.get_bind().execute(sa.text("SELECT facility_key, name FROM facility_name"))
    return [(key, name) for key, name in rows]


def upgrade() -> None:
    op.create_table(
        "facility_name",
        sa.Column("facility_key", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("facility_key", name=op.f("pk_facility_name")),
        sa.UniqueConstraint("name", name=op.f("uq_facility_name_name")),
    )
    op.execute(
        "INSERT INTO facility_name (name) SELECT DISTINCT facility_id FROM resource"
        " WHERE facility_id IS NOT NULL ORDER BY facility_id"
    )
    if op.get_bind().dialect.name == "postgresql":
        cases = " ".join(f"WHEN {_literal(n)} THEN {k}" for k, n in _facilities())
        using = f"CASE facility_key {cases} END" if cases else "NULL"
        op.execute("ALTER TABLE resource RENAME COLUMN facility_id TO facility_key")
        op.execute(f"ALTER TABLE resource ALTER COLUMN facility_key TYPE smallint USING {using}")
        op.execute("ANALYZE resource")
        return
    op.add_column("resource", sa.Column("facility_key", sa.SmallInteger(), nullable=True))
    op.execute(
        "UPDATE resource SET facility_key = (SELECT f.facility_key FROM facility_name f"
        " WHERE f.name = resource.facility_id) WHERE facility_id IS NOT NULL"
    )
    op.execute("ALTER TABLE resource DROP COLUMN facility_id")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        cases = " ".join(f"WHEN {k} THEN {_literal(n)}" for k, n in _facilities())
        using = f"CASE facility_key {cases} END" if cases else "NULL"
        op.execute(f"ALTER TABLE resource ALTER COLUMN facility_key TYPE varchar(64) USING {using}")
        op.execute("ALTER TABLE resource RENAME COLUMN facility_key TO facility_id")
        op.execute("ANALYZE resource")
    else:
        op.add_column("resource", sa.Column("facility_id", sa.String(64), nullable=True))
        op.execute(
            "UPDATE resource SET facility_id = (SELECT f.name FROM facility_name f"
            " WHERE f.facility_key = resource.facility_key) WHERE facility_key IS NOT NULL"
        )
        op.execute("ALTER TABLE resource DROP COLUMN facility_key")
    op.drop_table("facility_name")

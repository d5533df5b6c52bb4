"""Care relationships and routing by care: ``care_relationship``; the outbox row's reason,
person, caring facility and per-destination sequence number; the destination's last number.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Plain types on purpose: a migration must not change when application code changes.
UTC_TIME = sa.DateTime(timezone=True)
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
ID = sa.String(64)
KEY = sa.String(129)
SOURCES = ("activity", "referral", "registered", "grant", "revocation")


def upgrade() -> None:
    op.create_table(
        "care_relationship",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("person_id", ID, nullable=False),
        sa.Column("facility_id", ID, nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("ref", KEY, nullable=False),
        sa.Column("start_at", UTC_TIME, nullable=False),
        sa.Column("end_at", UTC_TIME, nullable=True),
        sa.Column("actor", sa.String(128), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("updated_at", UTC_TIME, nullable=False),
        sa.CheckConstraint(
            "source IN (" + ", ".join(f"'{s}'" for s in SOURCES) + ")",
            name="ck_care_relationship_source",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_care_relationship"),
        sa.UniqueConstraint("person_id", "facility_id", "source", "ref", name="uq_care_key"),
    )
    op.create_index(
        "ix_care_relationship_facility", "care_relationship", ["facility_id", "person_id"]
    )
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("reason", sa.Text(), nullable=True))
        batch.add_column(sa.Column("person_id", ID, nullable=True))
        batch.add_column(sa.Column("care_facility", ID, nullable=True))
        batch.add_column(sa.Column("sequence", sa.BigInteger(), nullable=True))
        batch.create_unique_constraint(
            "uq_outbox_destination_sequence", ["destination", "sequence"]
        )
    with op.batch_alter_table("delivery_destination") as batch:
        batch.add_column(
            sa.Column("last_sequence", sa.BigInteger(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("delivery_destination") as batch:
        batch.drop_column("last_sequence")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_constraint("uq_outbox_destination_sequence", type_="unique")
        batch.drop_column("sequence")
        batch.drop_column("care_facility")
        batch.drop_column("person_id")
        batch.drop_column("reason")
    op.drop_index("ix_care_relationship_facility", table_name="care_relationship")
    op.drop_table("care_relationship")

"""The consortium patient index (issue 10 §1): records, keys, history, review queue,
blocked pairs and merges (adapter/store/identity_tables.py, docs/patient-index.md).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# Plain types on purpose: a migration must not change when application code changes.
UTCDateTime = sa.DateTime(timezone=True)  # adapter.store.types.UTCDateTime
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "identity_record",
        sa.Column("patient_id", sa.String(64), nullable=False),
        sa.Column("person_id", sa.String(64), nullable=False),
        sa.Column("facility_id", sa.String(64), nullable=False),
        sa.Column("link_kind", sa.String(16), nullable=False),
        sa.Column("rule_version", sa.Integer(), nullable=False),
        sa.Column("rule", sa.String(64), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("evidence", sa.Text(), nullable=False),
        sa.Column("features", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("patient_id", name="pk_identity_record"),
    )
    op.create_index("ix_identity_record_person_id", "identity_record", ["person_id"])
    op.create_table(
        "identity_key",
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("patient_id", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("key_hash", "patient_id", name="pk_identity_key"),
    )
    op.create_index("ix_identity_key_patient_id", "identity_key", ["patient_id"])
    op.create_table(
        "identity_history",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("patient_id", sa.String(64), nullable=True),
        sa.Column("person_id", sa.String(64), nullable=True),
        sa.Column("previous_person_id", sa.String(64), nullable=True),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("rule_version", sa.Integer(), nullable=True),
        sa.Column("rule", sa.String(64), nullable=True),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("evidence", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_identity_history"),
    )
    op.create_index("ix_identity_history_patient_id", "identity_history", ["patient_id"])
    op.create_index("ix_identity_history_person_id", "identity_history", ["person_id"])
    op.create_table(
        "identity_review",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("patient_id", sa.String(64), nullable=False),
        sa.Column("other_id", sa.String(64), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("claimed_by", sa.String(128), nullable=True),
        sa.Column("resolved_by", sa.String(128), nullable=True),
        sa.Column("resolution", sa.String(16), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("rule_version", sa.Integer(), nullable=False),
        sa.Column("rule", sa.String(64), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("evidence", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_identity_review"),
    )
    op.create_index(
        "ix_identity_review_pair", "identity_review", ["patient_id", "other_id"], unique=True
    )
    op.create_index("ix_identity_review_state", "identity_review", ["state"])
    op.create_table(
        "identity_block",
        sa.Column("patient_id", sa.String(64), nullable=False),
        sa.Column("other_id", sa.String(64), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("patient_id", "other_id", name="pk_identity_block"),
    )
    op.create_table(
        "identity_merge",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("survivor_id", sa.String(64), nullable=False),
        sa.Column("merged_id", sa.String(64), nullable=False),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("snapshot", sa.Text(), nullable=False),
        sa.Column("undone_at", UTCDateTime, nullable=True),
        sa.Column("undone_by", sa.String(128), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_identity_merge"),
    )
    op.create_index("ix_identity_merge_survivor_id", "identity_merge", ["survivor_id"])
    op.create_index("ix_identity_merge_merged_id", "identity_merge", ["merged_id"])


def downgrade() -> None:
    for table in (
        "identity_merge",
        "identity_block",
        "identity_review",
        "identity_history",
        "identity_key",
        "identity_record",
    ):
        op.drop_table(table)

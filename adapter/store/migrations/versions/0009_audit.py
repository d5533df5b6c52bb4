"""The audit log: audit_record (hash-chained, append-only), audit_link, audit_checkpoint.

See adapter/store/audit_log.py and docs/audit.md. On PostgreSQL the service's database
user is given INSERT and SELECT only on these tables (docs/audit.md, "Grants").

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Plain types on purpose: a migration must not change when application code changes.
UTC_TIME = sa.DateTime(timezone=True)  # adapter.store.types.UTCDateTime
HASH = sa.String(64)


def upgrade() -> None:
    op.create_table(
        "audit_record",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("recorded", UTC_TIME, nullable=False),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(160), nullable=False),
        sa.Column("client", sa.String(160), nullable=True),
        sa.Column("facility", sa.String(64), nullable=True),
        sa.Column("address", sa.String(255), nullable=True),
        sa.Column("channel", sa.String(16), nullable=True),
        sa.Column("correlation_id", sa.String(64), nullable=True),
        sa.Column("request_id", sa.String(64), nullable=True),
        sa.Column("message_id", sa.String(36), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("prev_hash", HASH, nullable=False),
        sa.Column("hash", HASH, nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_record")),
    )
    for columns in (
        ("recorded",),
        ("correlation_id",),
        ("message_id",),
        ("action", "recorded"),
        ("actor",),
    ):
        op.create_index(op.f(f"ix_audit_record_{'_'.join(columns)}"), "audit_record", list(columns))
    op.create_table(
        "audit_link",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("reference", sa.String(160), nullable=False),
        sa.ForeignKeyConstraint(
            ["seq"], ["audit_record.seq"], name=op.f("fk_audit_link_seq_audit_record")
        ),
        sa.PrimaryKeyConstraint("seq", "kind", "reference", name=op.f("pk_audit_link")),
    )
    op.create_index(
        op.f("ix_audit_link_kind_reference_seq"), "audit_link", ["kind", "reference", "seq"]
    )
    op.create_table(
        "audit_checkpoint",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hash", HASH, nullable=False),
        sa.Column("made_at", UTC_TIME, nullable=False),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("signature", sa.Text(), nullable=False),
        sa.Column("statement", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_checkpoint")),
    )


def downgrade() -> None:
    op.drop_table("audit_checkpoint")
    op.drop_table("audit_link")
    op.drop_table("audit_record")

"""Nightly synchronisation: sync_run, sync_item, sync_bookmark, sync_lease.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Plain types on purpose: a migration must not change when application code changes.
UTC_TIME = sa.DateTime(timezone=True)  # adapter.store.types.UTCDateTime
JSON_TEXT = sa.Text()  # adapter.store.types.JSONText
ID = sa.String(64)


def upgrade() -> None:
    op.create_table(
        "sync_run",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("sources", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("replay", sa.Boolean(), nullable=False),
        sa.Column("started_at", UTC_TIME, nullable=False),
        sa.Column("finished_at", UTC_TIME, nullable=True),
        sa.Column("windows", JSON_TEXT, nullable=False),
        sa.Column("checkpoints", JSON_TEXT, nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("report", JSON_TEXT, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_sync_run"),
    )
    op.create_index("ix_sync_run_state_started_at", "sync_run", ["state", "started_at"])
    op.create_index("ix_sync_run_day", "sync_run", ["day"])
    op.create_table(
        "sync_item",
        sa.Column("sync_source", ID, nullable=False),
        sa.Column("item_key", sa.String(255), nullable=False),
        sa.Column("facility_id", ID, nullable=False),
        sa.Column("document_kind", sa.String(64), nullable=False),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("op", sa.String(16), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=True),
        sa.Column("message_id", sa.String(36), nullable=True),
        sa.Column("status", sa.String(32), nullable=True),
        sa.Column("versions", sa.Integer(), nullable=False),
        sa.Column("replayed", sa.Boolean(), nullable=False),
        sa.Column("run_id", sa.String(36), nullable=False),
        sa.Column("updated_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("sync_source", "item_key", name="pk_sync_item"),
    )
    op.create_index("ix_sync_item_sync_source_day", "sync_item", ["sync_source", "day"])
    op.create_index("ix_sync_item_message_id", "sync_item", ["message_id"])
    op.create_table(
        "sync_bookmark",
        sa.Column("sync_source", ID, nullable=False),
        sa.Column("watermark", sa.Text(), nullable=False),
        sa.Column("run_id", sa.String(36), nullable=False),
        sa.Column("updated_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("sync_source", name="pk_sync_bookmark"),
    )
    op.create_table(
        "sync_lease",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("holder", sa.String(128), nullable=True),
        sa.Column("until", UTC_TIME, nullable=True),
        sa.Column("last_run_day", sa.String(10), nullable=True),
        sa.PrimaryKeyConstraint("name", name="pk_sync_lease"),
    )


def downgrade() -> None:
    op.drop_table("sync_lease")
    op.drop_table("sync_bookmark")
    op.drop_index("ix_sync_item_message_id", table_name="sync_item")
    op.drop_index("ix_sync_item_sync_source_day", table_name="sync_item")
    op.drop_table("sync_item")
    op.drop_index("ix_sync_run_day", table_name="sync_run")
    op.drop_index("ix_sync_run_state_started_at", table_name="sync_run")
    op.drop_table("sync_run")

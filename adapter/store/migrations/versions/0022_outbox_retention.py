"""Outbox retention (decision 0064): delivered outbox rows and their attempts are pruned
after ``ADAPTER_OUTBOX_RETENTION_DAYS``. ``delivered_message`` keeps, per message and
destination whose delivered rows were pruned, that they were acknowledged (the nightly
reconciliation reads it); ``delivery_destination.pruned_total`` counts the pruned rows.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0022"
down_revision: str | Sequence[str] | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "delivered_message",
        sa.Column("message_id", sa.String(36), nullable=False),
        sa.Column("destination", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("message_id", "destination", name="pk_delivered_message"),
        sqlite_with_rowid=False,
    )
    with op.batch_alter_table("delivery_destination") as batch:
        batch.add_column(
            sa.Column("pruned_total", sa.BigInteger(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("delivery_destination") as batch:
        batch.drop_column("pruned_total")
    op.drop_table("delivered_message")

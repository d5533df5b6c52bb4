"""Delivery: outbox leases and order keys, delivery_attempt, delivery_destination.

Revision ID: 0002
Revises: 0001
Create Date: 2026-01-12
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Plain types on purpose: a migration must not change when application code changes.
UTC_TIME = sa.DateTime(timezone=True)  # adapter.store.types.UTCDateTime
JSON_TEXT = sa.Text()  # adapter.store.types.JSONText
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
ID = sa.String(64)
KEY = sa.String(129)  # "Patient/<id>"
WORKER = sa.String(128)


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("order_key", KEY, nullable=True))
        batch.add_column(sa.Column("claimed_by", WORKER, nullable=True))
        batch.add_column(sa.Column("claimed_until", UTC_TIME, nullable=True))
        batch.add_column(sa.Column("first_attempt_at", UTC_TIME, nullable=True))
        batch.add_column(sa.Column("last_attempt_at", UTC_TIME, nullable=True))
        batch.add_column(sa.Column("delivered_at", UTC_TIME, nullable=True))
        batch.add_column(sa.Column("last_status", sa.String(32), nullable=True))
        batch.add_column(sa.Column("sent_version_id", sa.Integer(), nullable=True))
    # rows written before this migration: the patient, else the resource itself
    op.execute(
        "UPDATE outbox SET order_key = COALESCE(patient_key, resource_type || '/' || resource_id)"
    )
    with op.batch_alter_table("outbox") as batch:
        batch.alter_column("order_key", existing_type=KEY, nullable=False)
        batch.drop_index("ix_outbox_destination_patient_key_id")
        batch.create_index("ix_outbox_destination_order_key_id", ["destination", "order_key", "id"])
        batch.create_index(
            "ix_outbox_destination_state_next_attempt_at",
            ["destination", "state", "next_attempt_at"],
        )

    op.create_table(
        "delivery_attempt",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("outbox_id", BIG_ID, nullable=False),
        sa.Column("destination", ID, nullable=False),
        sa.Column("attempted_at", UTC_TIME, nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("status", sa.String(32), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("operation_outcome", JSON_TEXT, nullable=True),
        sa.Column("duration_ms", sa.Float(), nullable=False),
        sa.Column("worker", WORKER, nullable=True),
        sa.CheckConstraint(
            "outcome IN ('delivered', 'retry', 'dead')", name=op.f("ck_delivery_attempt_outcome")
        ),
        sa.ForeignKeyConstraint(
            ["outbox_id"],
            ["outbox.id"],
            ondelete="CASCADE",
            name="fk_delivery_attempt_outbox_id_outbox",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_delivery_attempt"),
    )
    op.create_index("ix_delivery_attempt_outbox_id", "delivery_attempt", ["outbox_id"])
    op.create_index(
        "ix_delivery_attempt_destination_attempted_at",
        "delivery_attempt",
        ["destination", "attempted_at"],
    )

    op.create_table(
        "delivery_destination",
        sa.Column("destination", ID, nullable=False),
        sa.Column("breaker_state", sa.String(16), nullable=False),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("opened_count", sa.Integer(), nullable=False),
        sa.Column("open_until", UTC_TIME, nullable=True),
        sa.Column("probe_by", WORKER, nullable=True),
        sa.Column("last_success_at", UTC_TIME, nullable=True),
        sa.Column("last_failure_at", UTC_TIME, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("updated_at", UTC_TIME, nullable=False),
        sa.Column("attempts_total", sa.BigInteger(), nullable=False),
        sa.Column("delivered_total", sa.BigInteger(), nullable=False),
        sa.Column("retried_total", sa.BigInteger(), nullable=False),
        sa.Column("dead_total", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "breaker_state IN ('closed', 'open', 'half-open')",
            name=op.f("ck_delivery_destination_breaker_state"),
        ),
        sa.PrimaryKeyConstraint("destination", name="pk_delivery_destination"),
    )


def downgrade() -> None:
    op.drop_table("delivery_destination")
    op.drop_index("ix_delivery_attempt_destination_attempted_at", "delivery_attempt")
    op.drop_index("ix_delivery_attempt_outbox_id", "delivery_attempt")
    op.drop_table("delivery_attempt")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_index("ix_outbox_destination_state_next_attempt_at")
        batch.drop_index("ix_outbox_destination_order_key_id")
        batch.create_index(
            "ix_outbox_destination_patient_key_id", ["destination", "patient_key", "id"]
        )
        for column in (
            "sent_version_id",
            "last_status",
            "delivered_at",
            "last_attempt_at",
            "first_attempt_at",
            "claimed_until",
            "claimed_by",
            "order_key",
        ):
            batch.drop_column(column)

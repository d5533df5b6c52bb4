"""The referral ledger (转诊台账, issue 12 §3) and the overdue worklist (§2): one row per
referral Task kept in step with the Task, with the next deadline for the scheduler; one
row per Task and deadline breached.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_TIME = sa.DateTime(timezone=True)  # adapter.store.types.UTCDateTime
ID = sa.String(64)
REF = sa.String(129)
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # adapter.store.types.BigId


def upgrade() -> None:
    op.create_table(
        "referral_ledger",
        sa.Column("task_id", ID, nullable=False),
        sa.Column("request_id", ID, nullable=False),
        sa.Column("slip_number", sa.String(255), nullable=True),
        sa.Column("direction", sa.String(8), nullable=False),
        sa.Column("emergency", sa.Boolean(), nullable=False),
        sa.Column("green_channel", sa.Boolean(), nullable=False),
        sa.Column("backfilled", sa.Boolean(), nullable=False),
        sa.Column("patient_id", ID, nullable=True),
        sa.Column("patient_masked", sa.String(64), nullable=True),
        sa.Column("sex", sa.String(16), nullable=True),
        sa.Column("age", sa.Integer(), nullable=True),
        sa.Column("insurance", sa.String(64), nullable=True),
        sa.Column("diagnosis_code", sa.String(32), nullable=True),
        sa.Column("diagnosis_text", sa.String(255), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("sender_facility", ID, nullable=True),
        sa.Column("sender_department", sa.String(255), nullable=True),
        sa.Column("sender_doctor", sa.String(255), nullable=True),
        sa.Column("receiver_facility", ID, nullable=True),
        sa.Column("receiver_department", sa.String(255), nullable=True),
        sa.Column("receiver_doctor", sa.String(255), nullable=True),
        sa.Column("out_of_county", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("business_status", sa.String(32), nullable=True),
        sa.Column("rejection_reason", ID, nullable=True),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("received_at", UTC_TIME, nullable=True),
        sa.Column("accepted_at", UTC_TIME, nullable=True),
        sa.Column("rejected_at", UTC_TIME, nullable=True),
        sa.Column("arrived_at", UTC_TIME, nullable=True),
        sa.Column("admitted_at", UTC_TIME, nullable=True),
        sa.Column("discharged_at", UTC_TIME, nullable=True),
        sa.Column("feedback_at", UTC_TIME, nullable=True),
        sa.Column("followed_up_at", UTC_TIME, nullable=True),
        sa.Column("follow_ups", sa.Integer(), nullable=False),
        sa.Column("closed_at", UTC_TIME, nullable=True),
        sa.Column("feedback_document", REF, nullable=True),
        sa.Column("follow_up_record", REF, nullable=True),
        sa.Column("missing", sa.JSON(), nullable=False),
        sa.Column("updated_at", UTC_TIME, nullable=False),
        sa.Column("next_due_at", UTC_TIME, nullable=True),
        sa.Column("next_due_kind", sa.String(32), nullable=True),
        sa.PrimaryKeyConstraint("task_id", name="pk_referral_ledger"),
    )
    for columns in (
        ["created_at"],
        ["sender_facility", "created_at"],
        ["receiver_facility", "created_at"],
        ["next_due_at"],
        ["request_id"],
    ):
        op.create_index(f"ix_referral_ledger_{'_'.join(columns)}", "referral_ledger", columns)

    op.create_table(
        "referral_overdue",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("task_id", ID, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("due_at", UTC_TIME, nullable=False),
        sa.Column("noticed_at", UTC_TIME, nullable=False),
        sa.Column("facility_id", ID, nullable=True),
        sa.Column("department", sa.String(255), nullable=True),
        sa.Column("other_facility", ID, nullable=True),
        sa.Column("notice", REF, nullable=True),
        sa.Column("resolved_at", UTC_TIME, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_referral_overdue"),
        sa.UniqueConstraint("task_id", "kind", name="uq_referral_overdue_task_id_kind"),
    )
    op.create_index(
        "ix_referral_overdue_facility_id_resolved_at",
        "referral_overdue",
        ["facility_id", "resolved_at"],
    )
    op.create_index("ix_referral_overdue_due_at", "referral_overdue", ["due_at"])


def downgrade() -> None:
    op.drop_index("ix_referral_overdue_due_at", "referral_overdue")
    op.drop_index("ix_referral_overdue_facility_id_resolved_at", "referral_overdue")
    op.drop_table("referral_overdue")
    for columns in (
        ["request_id"],
        ["next_due_at"],
        ["receiver_facility", "created_at"],
        ["sender_facility", "created_at"],
        ["created_at"],
    ):
        op.drop_index(f"ix_referral_ledger_{'_'.join(columns)}", "referral_ledger")
    op.drop_table("referral_ledger")

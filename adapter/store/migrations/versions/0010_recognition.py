"""Recognition (检查检验结果互认, issue 13): the doctors' decisions, one row per patient, order
and item, with the coded reason when not recognised and the catalogue edition used; and
the reminders shown (``$recognisable`` by POST), one row per patient, order or encounter,
item and trigger.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_TIME = sa.DateTime(timezone=True)  # adapter.store.types.UTCDateTime
ID = sa.String(64)
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # adapter.store.types.BigId


def upgrade() -> None:
    op.create_table(
        "recognition_decision",
        sa.Column("task_id", ID, nullable=False),
        sa.Column("patient_id", ID, nullable=False),
        sa.Column("order_id", sa.String(255), nullable=False),
        sa.Column("item_code", ID, nullable=False),
        sa.Column("facility_id", ID, nullable=False),
        sa.Column("department", sa.String(255), nullable=True),
        sa.Column("doctor", sa.String(255), nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("reason_code", ID, nullable=True),
        sa.Column("reason_text", sa.Text(), nullable=True),
        sa.Column("prior", sa.String(129), nullable=True),
        sa.Column("edition", ID, nullable=False),
        sa.Column("decided_at", UTC_TIME, nullable=False),
        sa.Column("recorded_at", UTC_TIME, nullable=False),
        sa.CheckConstraint(
            "decision IN ('recognised', 'not-recognised')",
            name=op.f("ck_recognition_decision_decision"),
        ),
        sa.PrimaryKeyConstraint("task_id", name="pk_recognition_decision"),
        sa.UniqueConstraint(
            "patient_id",
            "order_id",
            "item_code",
            name="uq_recognition_decision_patient_id_order_id_item_code",
        ),
    )
    op.create_index(
        "ix_recognition_decision_facility_id_decided_at",
        "recognition_decision",
        ["facility_id", "decided_at"],
    )
    op.create_index(
        "ix_recognition_decision_item_code_decided_at",
        "recognition_decision",
        ["item_code", "decided_at"],
    )

    op.create_table(
        "recognition_reminder",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("patient_id", ID, nullable=False),
        sa.Column("context", sa.String(255), nullable=False),
        sa.Column("item_code", ID, nullable=False),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("facility_id", ID, nullable=False),
        sa.Column("doctor", sa.String(255), nullable=True),
        sa.Column("recognisable", sa.Boolean(), nullable=False),
        sa.Column("edition", ID, nullable=False),
        sa.Column("shown_at", UTC_TIME, nullable=False),
        sa.CheckConstraint(
            "trigger IN ('encounter', 'order')", name=op.f("ck_recognition_reminder_trigger")
        ),
        sa.PrimaryKeyConstraint("id", name="pk_recognition_reminder"),
        sa.UniqueConstraint(
            "patient_id",
            "context",
            "item_code",
            "trigger",
            name="uq_recognition_reminder_patient_id_context_item_code_trigger",
        ),
    )
    op.create_index(
        "ix_recognition_reminder_facility_id_shown_at",
        "recognition_reminder",
        ["facility_id", "shown_at"],
    )
    op.create_index("ix_recognition_reminder_shown_at", "recognition_reminder", ["shown_at"])


def downgrade() -> None:
    op.drop_index("ix_recognition_reminder_shown_at", "recognition_reminder")
    op.drop_index("ix_recognition_reminder_facility_id_shown_at", "recognition_reminder")
    op.drop_table("recognition_reminder")
    op.drop_index("ix_recognition_decision_item_code_decided_at", "recognition_decision")
    op.drop_index("ix_recognition_decision_facility_id_decided_at", "recognition_decision")
    op.drop_table("recognition_decision")

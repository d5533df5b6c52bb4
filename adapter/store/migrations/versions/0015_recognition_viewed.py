"""Recognition statistics by department and "viewed" (已查阅): the reminder row keeps the
department it was shown in, and when a doctor opened the prior result it showed.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | Sequence[str] | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_TIME = sa.DateTime(timezone=True)  # adapter.store.types.UTCDateTime


def upgrade() -> None:
    with op.batch_alter_table("recognition_reminder") as table:
        table.add_column(sa.Column("department", sa.String(255), nullable=True))
        table.add_column(sa.Column("viewed_at", UTC_TIME, nullable=True))
        table.add_column(sa.Column("viewed_result", sa.String(129), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("recognition_reminder") as table:
        table.drop_column("viewed_result")
        table.drop_column("viewed_at")
        table.drop_column("department")

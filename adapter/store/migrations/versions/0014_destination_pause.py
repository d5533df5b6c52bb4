"""A destination paused by an operator (the console's 投递 page, issue 17): while
``paused_at`` is set the delivery workers send it nothing and its rows wait in the queue
without using tries, as behind an open circuit breaker; ``paused_by`` says who.

Revision ID: 0014
Revises: 0012
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("delivery_destination") as batch:
        batch.add_column(sa.Column("paused_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("paused_by", sa.String(128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("delivery_destination") as batch:
        batch.drop_column("paused_by")
        batch.drop_column("paused_at")

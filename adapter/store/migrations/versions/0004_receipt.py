"""How each inbound message came in: its channel and its peer (issue 9, item 2).

``channel`` is http, mllp, file-drop, fhir-pull or cli; ``peer`` the sender's address, the
file name, or the pulled URL without credentials (adapter/pipeline/receipt.py). Messages
stored before this migration keep NULL in both: how they came in was not recorded.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("inbound_message") as batch:
        batch.add_column(sa.Column("channel", sa.String(16), nullable=True))
        batch.add_column(sa.Column("peer", sa.String(255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("inbound_message") as batch:
        batch.drop_column("peer")
        batch.drop_column("channel")

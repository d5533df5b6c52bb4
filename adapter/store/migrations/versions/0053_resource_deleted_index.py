"""PostgreSQL: ``ix_resource_deleted``, a partial index of the resources marked deleted
(decision 0127). A search by one name or address criterion alone takes its total from the
arrays its pre-read counted when the type has no such resource (one probe of this index,
empty in a store that never deletes). SQLite: nothing changes.

Revision ID: 0053
Revises: 0052
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0053"
down_revision: str | Sequence[str] | None = "0052"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("CREATE INDEX ix_resource_deleted ON resource (resource_type) WHERE deleted")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP INDEX ix_resource_deleted")

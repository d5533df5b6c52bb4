"""Indexes for type-level and system-level history (newest first, ``_since``).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_resource_version_resource_type_last_updated",
        "resource_version",
        ["resource_type", "last_updated"],
    )
    op.create_index("ix_resource_version_last_updated", "resource_version", ["last_updated"])


def downgrade() -> None:
    op.drop_index("ix_resource_version_last_updated", table_name="resource_version")
    op.drop_index("ix_resource_version_resource_type_last_updated", table_name="resource_version")

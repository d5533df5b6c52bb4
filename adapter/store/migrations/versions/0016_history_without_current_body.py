"""History rows no longer copy the current version's body: ``resource_version.body`` is
NULL while the version is the current one (its body is the ``resource`` row's) and is
filled when a newer version supersedes it (decision 0042). Existing rows: the body of
every current version is cleared; superseded versions keep theirs.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | Sequence[str] | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_CURRENT = (
    "EXISTS (SELECT 1 FROM resource r WHERE r.resource_type = resource_version.resource_type"
    " AND r.id = resource_version.id AND r.version_id = resource_version.version_id)"
)


def upgrade() -> None:
    with op.batch_alter_table("resource_version") as table:
        table.alter_column("body", existing_type=sa.Text(), nullable=True)
    op.execute(f"UPDATE resource_version SET body = NULL WHERE {_CURRENT}")


def downgrade() -> None:
    op.execute(
        "UPDATE resource_version SET body = (SELECT r.body FROM resource r"
        " WHERE r.resource_type = resource_version.resource_type"
        " AND r.id = resource_version.id)"
        f" WHERE body IS NULL AND {_CURRENT}"
    )
    with op.batch_alter_table("resource_version") as table:
        table.alter_column("body", existing_type=sa.Text(), nullable=False)

"""The current version of a resource has no ``resource_version`` row (decision 0075): the
resource row holds everything that row held (version, time, deleted flag, message; its
body was already only there since 0016), so the history table keeps only the versions
that were superseded, each with its body. The store writes a history row when a version
is superseded; history, vread and documents read the resource row as the current
version.

Upgrade deletes every history row of a current version; downgrade writes them back as
0016 to 0027 had them (no body: the current body is the resource row's).

Revision ID: 0030
Revises: 0027
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0030"
down_revision: str | Sequence[str] | None = "0027"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_CURRENT = (
    "EXISTS (SELECT 1 FROM resource r WHERE r.resource_type = resource_version.resource_type"
    " AND r.id = resource_version.id AND r.version_id = resource_version.version_id)"
)


def upgrade() -> None:
    op.execute(f"DELETE FROM resource_version WHERE {_CURRENT}")


def downgrade() -> None:
    # version 0 is a placeholder inside one transaction (lock_resources), never a version
    op.execute(
        "INSERT INTO resource_version (resource_type, id, version_id, last_updated, deleted,"
        " body, message_id) SELECT r.resource_type, r.id, r.version_id, r.last_updated,"
        " r.deleted, NULL, r.message_id FROM resource r WHERE r.version_id > 0 AND NOT EXISTS"
        " (SELECT 1 FROM resource_version v WHERE v.resource_type = r.resource_type"
        " AND v.id = r.id AND v.version_id = r.version_id)"
    )

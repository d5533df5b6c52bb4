"""On PostgreSQL, search_index.resource_key no longer has a foreign key to resource
(decision 0060). Index rows are written only through the store's one door
(adapter/store/resources.py), in the transaction that writes their resource, and no code
path deletes resource rows: the foreign-key trigger's probe of ``resource`` for each of
the ~100 index rows of a lab report was the largest flat server cost of the PostgreSQL
night. SQLite keeps the constraint (its check costs little there).

Downgrade: index rows whose resource is gone are deleted, then the constraint is added
again as 0018 made it (ON DELETE CASCADE).

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0021"
down_revision: str | Sequence[str] | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NAME = "fk_search_index_resource_key_resource"


def _postgres() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    if _postgres():
        op.execute(f"ALTER TABLE search_index DROP CONSTRAINT IF EXISTS {_NAME}")


def downgrade() -> None:
    if not _postgres():
        return
    op.execute(
        "DELETE FROM search_index s WHERE NOT EXISTS"
        " (SELECT 1 FROM resource r WHERE r.resource_key = s.resource_key)"
    )
    op.execute(
        f"ALTER TABLE search_index ADD CONSTRAINT {_NAME} FOREIGN KEY (resource_key)"
        " REFERENCES resource (resource_key) ON DELETE CASCADE"
    )

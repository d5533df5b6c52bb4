"""PostgreSQL: the rows outside the search index in fewer bytes (decision 0089).

1. The three foreign keys to ``inbound_message`` (from ``resource``, ``resource_version``
   and ``outbox``) become ``DEFERRABLE INITIALLY IMMEDIATE``: checked as before, except in
   a bulk batch, which defers them to its commit (``SET CONSTRAINTS``) and writes each new
   message's row once, in its final form, after its resources (an INSERT then an UPDATE
   left a dead copy of every message row and new entries in its four indexes). A catalogue
   change: no row is rewritten, no constraint checked again.

2. ``ix_resource_resource_type_last_updated_id`` becomes ``(resource_type, last_updated)``
   (``ix_resource_resource_type_last_updated``): the id in each entry served no order (a
   search's default order is ``last_updated`` descending, ``id`` ascending: the index read
   backwards gives ids descending, so the ids of one instant were sorted anyway).

SQLite: nothing changes (its UPDATE rewrites the row in place; its bulk path is unchanged).

Downgrade: the constraints ``NOT DEFERRABLE`` again, the index with ``id`` again.

Revision ID: 0038
Revises: 0036
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0038"
down_revision: str | Sequence[str] | None = "0036"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Plain names on purpose: a migration must not change when application code does.
_MESSAGE_KEYS = (
    ("resource", "fk_resource_message_id_inbound_message"),
    ("resource_version", "fk_resource_version_message_id_inbound_message"),
    ("outbox", "fk_outbox_message_id_inbound_message"),
)

_LAST_UPDATED_ID = "ix_resource_resource_type_last_updated_id"
_LAST_UPDATED = "ix_resource_resource_type_last_updated"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, name in _MESSAGE_KEYS:
        op.execute(f"ALTER TABLE {table} ALTER CONSTRAINT {name} DEFERRABLE INITIALLY IMMEDIATE")
    op.create_index(_LAST_UPDATED, "resource", ["resource_type", "last_updated"])
    op.drop_index(_LAST_UPDATED_ID, table_name="resource")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, name in _MESSAGE_KEYS:
        op.execute(f"ALTER TABLE {table} ALTER CONSTRAINT {name} NOT DEFERRABLE")
    op.create_index(_LAST_UPDATED_ID, "resource", ["resource_type", "last_updated", "id"])
    op.drop_index(_LAST_UPDATED, table_name="resource")

"""Resource bodies stored without their ``id``, ``meta.versionId`` and ``meta.lastUpdated``
(the row's ``id``, ``version_id`` and ``last_updated``; decision 0128,
adapter/store/body_stamps.py). Both databases; no column changes.

Upgrade: nothing. The adapter writes new and changed resources in the new form from now on;
a body stored before is read as it is (rewriting every row would leave as many dead rows
on PostgreSQL as the table has live ones).

Downgrade: every body stored without its stamps (``resource`` and ``resource_version``:
a history row is copied from its resource row by SQL) is written back whole, a frame of
the same JSON text a read gives: what an adapter before decision 0128 reads.

Revision ID: 0052
Revises: 0051
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0052"
down_revision: str | Sequence[str] | None = "0051"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    from adapter.store.body_stamps import rewrite_whole

    conn = op.get_bind()
    for table in ("resource", "resource_version"):
        rewrite_whole(conn, table)

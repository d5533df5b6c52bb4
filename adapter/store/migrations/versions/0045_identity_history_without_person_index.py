"""``identity_history`` loses its index on ``person_id`` (decision 0115), on both databases.

The one query that reads the history by person (adapter/identity/index/review.py,
``link_history``) asks ``person_id = :p OR previous_person_id = :p``; with no index on
``previous_person_id`` neither PostgreSQL nor SQLite can use an index on ``person_id`` for
that disjunction (EXPLAIN: a walk of the table either way), and nothing else reads the
column by value. The index only cost space: 0.08 KB of PostgreSQL per lab message with a
new patient. The reads by patient keep ``ix_identity_history_patient_id``.

Downgrade: the index built again.

Revision ID: 0045
Revises: 0044
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0045"
down_revision: str | Sequence[str] | None = "0044"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_INDEX = "ix_identity_history_person_id"


def upgrade() -> None:
    op.drop_index(_INDEX, table_name="identity_history")


def downgrade() -> None:
    op.create_index(_INDEX, "identity_history", ["person_id"])

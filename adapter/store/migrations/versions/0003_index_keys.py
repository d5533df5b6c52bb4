"""Bounded search_index keys: a long text keeps its whole value in ``<column>_full``.

The indexed text columns (system, code, value_norm, reference) hold at most 200 characters
(adapter/store/index_keys.py, decision 0012); existing rows with longer values (possible on
SQLite, and between 200 characters and the btree limit on PostgreSQL) are cut here the way
new rows are: the beginning of system / code / value_norm, the end of reference.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KEY_CHARS = 200  # a copy: a migration must not change when application code changes
HEAD_KEYED = ("system", "code", "value_norm")


def upgrade() -> None:
    with op.batch_alter_table("search_index") as batch:
        for column in (*HEAD_KEYED, "reference"):
            batch.add_column(sa.Column(f"{column}_full", sa.Text(), nullable=True))
    # SET expressions read the row as it was before the UPDATE, on both databases
    for column in HEAD_KEYED:
        op.execute(
            f"UPDATE search_index SET {column}_full = {column}, "
            f"{column} = substr({column}, 1, {KEY_CHARS}) "
            f"WHERE length({column}) >= {KEY_CHARS}"
        )
    op.execute(
        "UPDATE search_index SET reference_full = reference, "
        f"reference = substr(reference, length(reference) - {KEY_CHARS - 1}) "
        f"WHERE length(reference) >= {KEY_CHARS}"
    )


def downgrade() -> None:
    for column in (*HEAD_KEYED, "reference"):
        op.execute(
            f"UPDATE search_index SET {column} = {column}_full WHERE {column}_full IS NOT NULL"
        )
    with op.batch_alter_table("search_index") as batch:
        for column in (*HEAD_KEYED, "reference"):
            batch.drop_column(f"{column}_full")

"""SQLite: the search index as a WITHOUT ROWID table keyed by (resource_key, kind, row_id)
(decision 0085).

The table was a rowid table (``row_id`` the rowid, numbered over the whole table) with an
index ``ix_search_index_resource (resource_key)`` to find and delete a resource's rows. As a
WITHOUT ROWID table its b-tree is in (resource_key, kind, row_id) order and serves that
itself: the index goes. ``row_id`` becomes the row's number among its resource's rows (0, 1, ...;
the store writes it), which a sort's tie-break compares between rows of one resource only.
The per-kind indexes end with resource_key and now carry kind and that small number as the
rest of the key instead of the rowid: they hold every column a search reads of them.

SQLite cannot change a table's key, so the table is rebuilt as 0028 did: a new table, the
rows copied in key order and numbered in their old row order within each resource, the old
table dropped, the indexes built once. PostgreSQL: nothing changes (its heap table keeps
``ix_search_index_resource``; the store writes the numbers there too).

Downgrade (SQLite): rebuilt again as a rowid table with the index, the rows numbered over
the table in (resource_key, row_id) order: each resource's rows keep their order.

Revision ID: 0036
Revises: 0035
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0036"
down_revision: str | Sequence[str] | None = "0035"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Plain types and names on purpose: a migration must not change when application code does.
_VALUES = (
    "resource_key, value_date_start, value_date_end, value_number, target_key, param_id,"
    " system_id, kind, code, value, value_norm, reference, code_full, value_norm_full,"
    " reference_full"
)
# (name, kind, columns between param_id and resource_key, extra predicate)
_INDEXES: tuple[tuple[str, int, list[str], str], ...] = (
    ("ix_search_index_token", 1, ["code", "system_id"], ""),
    ("ix_search_index_uri", 6, ["code"], ""),
    ("ix_search_index_string", 2, ["value_norm"], ""),
    ("ix_search_index_date", 3, ["value_date_start", "value_date_end"], ""),
    ("ix_search_index_date_end", 3, ["value_date_end"], ""),
    ("ix_search_index_quantity", 5, ["value_number"], ""),
    ("ix_search_index_reference", 4, ["reference"], " AND reference IS NOT NULL"),
    ("ix_search_index_target", 4, ["target_key"], " AND target_key IS NOT NULL"),
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild(
            without_rowid=True,
            # each resource's rows numbered 0, 1, ... in their old order (the tie-break's)
            row_id="row_number() OVER (PARTITION BY resource_key ORDER BY row_id) - 1",
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild(without_rowid=False, row_id="row_number() OVER (ORDER BY resource_key, row_id)")


def _columns(without_rowid: bool) -> list[sa.Column[object]]:
    """The columns in the order of the table built: the model's order (decision 0071) for
    the new one; 0028's, with 0032's ``target_key`` last, for the old one."""
    target = sa.Column("target_key", sa.BigInteger(), nullable=True)
    columns = [
        sa.Column("row_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("resource_key", sa.Integer(), nullable=False),
        sa.Column("value_date_start", sa.BigInteger(), nullable=True),
        sa.Column("value_date_end", sa.BigInteger(), nullable=True),
        sa.Column("value_number", sa.Float(), nullable=True),
        sa.Column("param_id", sa.Integer(), nullable=False),
        sa.Column("system_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.SmallInteger(), nullable=False),
        sa.Column("code", sa.Text(), nullable=True),
        sa.Column("value", sa.Text(), nullable=True),
        sa.Column("value_norm", sa.Text(), nullable=True),
        sa.Column("reference", sa.Text(), nullable=True),
        sa.Column("code_full", sa.Text(), nullable=True),
        sa.Column("value_norm_full", sa.Text(), nullable=True),
        sa.Column("reference_full", sa.Text(), nullable=True),
    ]
    if without_rowid:
        columns.insert(5, target)
    else:
        columns.append(target)
    return columns


def _rebuild(*, without_rowid: bool, row_id: str) -> None:
    op.rename_table("search_index", "search_index_old")
    key = ["resource_key", "kind", "row_id"] if without_rowid else ["row_id"]
    op.create_table(
        "search_index",
        *_columns(without_rowid),
        sa.ForeignKeyConstraint(
            ["resource_key"],
            ["resource.resource_key"],
            ondelete="CASCADE",
            name="fk_search_index_resource_key_resource",
        ),
        sa.PrimaryKeyConstraint(*key, name="pk_search_index"),
        sqlite_with_rowid=not without_rowid,
    )
    # in the new key's order: the b-tree is filled from left to right
    order = "resource_key, kind, row_id" if without_rowid else "resource_key, row_id"
    op.execute(
        f"INSERT INTO search_index (row_id, {_VALUES})"
        f" SELECT {row_id}, {_VALUES} FROM search_index_old ORDER BY {order}"
    )
    op.drop_table("search_index_old")  # and its indexes, whose names are built again now
    for name, kind, columns, where in _INDEXES:
        op.create_index(
            name,
            "search_index",
            ["param_id", *columns, "resource_key"],
            sqlite_where=sa.text(f"kind = {kind}{where}"),
        )
    if not without_rowid:
        op.create_index("ix_search_index_resource", "search_index", ["resource_key"])

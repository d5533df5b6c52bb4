"""SQLite: the search index's dates as integer microseconds since 1970 UTC (decision 0073).

``value_date_start`` and ``value_date_end`` were SQLite's UTC text
(``YYYY-MM-DD HH:MM:SS.ffffff``, 26 bytes) in the row and in both date indexes; as integers
they take 8 and compare as the times do. SQLite cannot change a column's declared type, so
the table is rebuilt as 0026 did: a new table, the rows copied with their row ids and the
dates converted, the old table dropped, the indexes built once. PostgreSQL: nothing changes
(``timestamptz`` is 8 bytes already).

Downgrade (SQLite): rebuilt again with the dates as text.

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0028"
down_revision: str | Sequence[str] | None = "0027"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Plain types on purpose: a migration must not change when application code changes.
UTC_TIME = sa.DateTime(timezone=True)

_BEFORE = (
    "row_id, resource_key, value_number, param_id, system_id, kind, code, value, value_norm,"
    " reference, code_full, value_norm_full, reference_full"
)
_INDEXES: tuple[tuple[str, int, list[str]], ...] = (
    ("ix_search_index_token", 1, ["code", "system_id"]),
    ("ix_search_index_uri", 6, ["code"]),
    ("ix_search_index_string", 2, ["value_norm"]),
    ("ix_search_index_date", 3, ["value_date_start", "value_date_end"]),
    ("ix_search_index_date_end", 3, ["value_date_end"]),
    ("ix_search_index_quantity", 5, ["value_number"]),
    ("ix_search_index_reference", 4, ["reference"]),
)


def _micros(column: str) -> str:
    """SQLite's UTC text (``YYYY-MM-DD HH:MM:SS[.ffffff]``) as microseconds since 1970."""
    return (
        f"CASE WHEN {column} IS NULL THEN NULL ELSE"
        f" CAST(strftime('%s', substr({column}, 1, 19)) AS INTEGER) * 1000000"
        f" + CAST(substr(substr({column}, 21) || '000000', 1, 6) AS INTEGER) END"
    )


def _text(column: str) -> str:
    """Microseconds since 1970 as SQLite's UTC text (floored: a time before 1970 too)."""
    micros = f"((({column} % 1000000) + 1000000) % 1000000)"
    seconds = f"(({column} - {micros}) / 1000000)"
    return (
        f"CASE WHEN {column} IS NULL THEN NULL ELSE"
        f" strftime('%Y-%m-%d %H:%M:%S', {seconds}, 'unixepoch')"
        f" || '.' || printf('%06d', {micros}) END"
    )


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild(sa.BigInteger(), _micros)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild(UTC_TIME, _text)


def _rebuild(date_type: sa.types.TypeEngine, convert: object) -> None:
    assert callable(convert)
    for name, _, _ in _INDEXES:
        op.drop_index(name, table_name="search_index")
    op.drop_index("ix_search_index_resource", table_name="search_index")
    op.rename_table("search_index", "search_index_old")
    op.create_table(
        "search_index",
        sa.Column("row_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("resource_key", sa.Integer(), nullable=False),
        sa.Column("value_date_start", date_type, nullable=True),
        sa.Column("value_date_end", date_type, nullable=True),
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
        sa.ForeignKeyConstraint(
            ["resource_key"],
            ["resource.resource_key"],
            ondelete="CASCADE",
            name="fk_search_index_resource_key_resource",
        ),
        sa.PrimaryKeyConstraint("row_id", name="pk_search_index"),
    )
    op.execute(
        f"INSERT INTO search_index ({_BEFORE}, value_date_start, value_date_end)"
        f" SELECT {_BEFORE}, {convert('value_date_start')}, {convert('value_date_end')}"
        " FROM search_index_old"
    )
    op.drop_table("search_index_old")
    for name, kind, columns in _INDEXES:
        op.create_index(
            name,
            "search_index",
            ["param_id", *columns, "resource_key"],
            sqlite_where=sa.text(f"kind = {kind}"),
        )
    op.create_index("ix_search_index_resource", "search_index", ["resource_key"])

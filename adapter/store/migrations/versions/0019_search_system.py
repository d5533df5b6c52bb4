"""Search index rows name their token / quantity system by a small integer (decision 0059):
``search_system`` holds each system once (its text and the SHA-256 it is looked up by), and
``search_index.system_id`` replaces ``system`` and ``system_full`` in every row and in the
token index.

``search_system`` is filled with the distinct systems of the index (hashed here, in
Python: SQLite has no SHA-256), then ``search_index`` is rebuilt as 0018 did: a new table,
the rows copied with their row ids and their system's id, the old table dropped, the
indexes built once (on PostgreSQL a dropped column would keep its bytes until the table is
rewritten anyway).

Downgrade: the index rebuilt with ``system`` (the bounded key of index_keys.py: the first
200 characters of a longer value) and ``system_full`` from ``search_system``, which is
dropped.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-04
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | Sequence[str] | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Plain types on purpose: a migration must not change when application code changes.
UTC_TIME = sa.DateTime(timezone=True)
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
KEY_CHARS = 200  # index_keys.KEY_CHARS when 0018 was the head

_COMMON = (
    "row_id, resource_type, resource_key, param, kind, code, value, value_norm,"
    " value_date_start, value_date_end, value_number, reference, code_full, value_norm_full,"
    " reference_full"
)


def _postgres() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    op.create_table(
        "search_system",
        sa.Column("system_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("system", sa.Text(), nullable=False),
        sa.Column("system_hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("system_id", name="pk_search_system"),
        sa.UniqueConstraint("system_hash", name="uq_search_system_system_hash"),
    )
    bind = op.get_bind()
    systems = bind.execute(
        sa.text(
            "SELECT DISTINCT coalesce(system_full, system) FROM search_index"
            " WHERE system IS NOT NULL ORDER BY 1"
        )
    ).scalars()
    rows = [
        {"system": s, "system_hash": hashlib.sha256(s.encode("utf-8")).hexdigest()} for s in systems
    ]
    if rows:
        bind.execute(
            sa.text(
                "INSERT INTO search_system (system, system_hash) VALUES (:system, :system_hash)"
            ),
            rows,
        )
    _rebuild(
        [sa.Column("system_id", sa.Integer(), nullable=True)],
        copy=(
            f"INSERT INTO search_index ({_COMMON}, system_id)"
            f" SELECT {_prefixed('o')}, s.system_id FROM search_index_old o"
            " LEFT JOIN search_system s ON s.system = coalesce(o.system_full, o.system)"
        ),
        token=["code", "system_id"],
    )


def downgrade() -> None:
    _rebuild(
        [
            sa.Column("system", sa.Text(), nullable=True),
            sa.Column("system_full", sa.Text(), nullable=True),
        ],
        copy=(
            f"INSERT INTO search_index ({_COMMON}, system, system_full)"
            f" SELECT {_prefixed('o')},"
            f" CASE WHEN length(s.system) >= {KEY_CHARS} THEN substr(s.system, 1, {KEY_CHARS})"
            " ELSE s.system END,"
            f" CASE WHEN length(s.system) >= {KEY_CHARS} THEN s.system END"
            " FROM search_index_old o LEFT JOIN search_system s ON s.system_id = o.system_id"
        ),
        token=["code", "system"],
    )
    op.drop_table("search_system")


def _prefixed(alias: str) -> str:
    return ", ".join(f"{alias}.{name.strip()}" for name in _COMMON.split(","))


_KINDS: tuple[tuple[str, list[str], dict[str, object]], ...] = (
    ("uri", ["code"], {}),
    ("string", ["value_norm"], {"postgresql_ops": {"value_norm": "text_pattern_ops"}}),
    ("date", ["value_date_start", "value_date_end"], {}),
    ("quantity", ["value_number"], {}),
    ("reference", ["reference"], {}),
)


def _rebuild(system_columns: list[sa.Column[object]], *, copy: str, token: list[str]) -> None:
    """search_index as a new table with ``system_columns``: the old one renamed (its
    indexes dropped, names freed), the rows copied by ``copy``, the old one dropped, then
    the indexes built once (``token``: the token index's value columns)."""
    for kind in ("token", *(k for k, _, _ in _KINDS)):
        op.drop_index(f"ix_search_index_{kind}", table_name="search_index")
    op.drop_index("ix_search_index_date_end", table_name="search_index")
    op.drop_index("ix_search_index_resource", table_name="search_index")
    op.rename_table("search_index", "search_index_old")
    if _postgres():  # index, constraint and sequence names are the schema's
        op.execute("ALTER INDEX pk_search_index RENAME TO pk_search_index_old")
        op.execute("ALTER SEQUENCE search_index_row_id_seq RENAME TO search_index_old_row_id_seq")
        op.execute(
            "ALTER TABLE search_index_old RENAME CONSTRAINT"
            " fk_search_index_resource_key_resource TO fk_search_index_old_resource_key"
        )
    op.create_table(
        "search_index",
        sa.Column("row_id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("resource_type", sa.String(64), nullable=False),
        sa.Column("resource_key", BIG_ID, nullable=False),
        sa.Column("param", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        *system_columns,
        sa.Column("code", sa.Text(), nullable=True),
        sa.Column("value", sa.Text(), nullable=True),
        sa.Column("value_norm", sa.Text(), nullable=True),
        sa.Column("value_date_start", UTC_TIME, nullable=True),
        sa.Column("value_date_end", UTC_TIME, nullable=True),
        sa.Column("value_number", sa.Float(), nullable=True),
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
    op.execute(copy)
    op.drop_table("search_index_old")
    if _postgres():
        op.execute(
            "SELECT setval('search_index_row_id_seq', (SELECT coalesce(max(row_id), 0) + 1"
            " FROM search_index), false)"
        )
    for kind, columns, extra in (("token", token, {}), *_KINDS):
        where = sa.text(f"kind = '{kind}'")
        op.create_index(
            f"ix_search_index_{kind}",
            "search_index",
            ["resource_type", "param", *columns, "resource_key"],
            postgresql_where=where,
            sqlite_where=where,
            **extra,  # type: ignore[arg-type]
        )
    where = sa.text("kind = 'date'")
    op.create_index(
        "ix_search_index_date_end",
        "search_index",
        ["resource_type", "param", "value_date_end", "resource_key"],
        postgresql_where=where,
        sqlite_where=where,
    )
    op.create_index("ix_search_index_resource", "search_index", ["resource_key"])

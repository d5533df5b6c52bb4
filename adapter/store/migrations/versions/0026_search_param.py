"""Search index rows name their resource type, parameter and kind by one small integer
(decision 0071): ``search_param`` holds each (resource type, parameter row name, kind)
once, and ``search_index.param_id`` replaces ``resource_type`` and ``param`` in every row
and as the first column of every per-kind index; ``kind`` stays in the row (the partial
indexes' predicate) as a small integer (token 1, string 2, date 3, reference 4, quantity 5,
uri 6).

``search_param`` is filled with the distinct triples of the index, then ``search_index``
is rebuilt as 0018 and 0019 did: a new table (its columns in an order without alignment
padding on PostgreSQL: the 8-byte values, then the 4- and 2-byte ones, then the texts), the
rows copied with their row ids (a sort's tie-break) and their triple's id, the old table
dropped, the indexes built once. The keys stay as 0021 and 0024 left them: the primary key
and the foreign key to ``resource`` on SQLite only.

Downgrade: the index rebuilt with ``resource_type``, ``param`` and ``kind`` as text from
``search_param``, which is dropped.

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0026"
down_revision: str | Sequence[str] | None = "0025"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Plain types on purpose: a migration must not change when application code changes.
UTC_TIME = sa.DateTime(timezone=True)
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
KINDS = {"token": 1, "string": 2, "date": 3, "reference": 4, "quantity": 5, "uri": 6}

_VALUES = (
    "row_id, resource_key, system_id, code, value, value_norm, value_date_start,"
    " value_date_end, value_number, reference, code_full, value_norm_full, reference_full"
)
# the per-kind indexes: (kind, value columns, options)
_INDEXES: tuple[tuple[str, str, list[str], dict[str, object]], ...] = (
    ("ix_search_index_token", "token", ["code", "system_id"], {}),
    ("ix_search_index_uri", "uri", ["code"], {}),
    (
        "ix_search_index_string",
        "string",
        ["value_norm"],
        {"postgresql_ops": {"value_norm": "text_pattern_ops"}},
    ),
    ("ix_search_index_date", "date", ["value_date_start", "value_date_end"], {}),
    ("ix_search_index_date_end", "date", ["value_date_end"], {}),
    ("ix_search_index_quantity", "quantity", ["value_number"], {}),
    ("ix_search_index_reference", "reference", ["reference"], {}),
)


def _postgres() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def _kind_number(column: str) -> str:
    whens = " ".join(f"WHEN '{name}' THEN {number}" for name, number in KINDS.items())
    return f"CASE {column} {whens} END"


def _kind_name(column: str) -> str:
    whens = " ".join(f"WHEN {number} THEN '{name}'" for name, number in KINDS.items())
    return f"CASE {column} {whens} END"


def _prefixed(alias: str) -> str:
    return ", ".join(f"{alias}.{name.strip()}" for name in _VALUES.split(","))


def upgrade() -> None:
    op.create_table(
        "search_param",
        sa.Column("param_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("resource_type", sa.String(64), nullable=False),
        sa.Column("param", sa.String(64), nullable=False),
        sa.Column("kind", sa.SmallInteger(), nullable=False),
        sa.PrimaryKeyConstraint("param_id", name="pk_search_param"),
        sa.UniqueConstraint(
            "resource_type", "param", "kind", name="uq_search_param_resource_type_param_kind"
        ),
    )
    op.execute(
        "INSERT INTO search_param (resource_type, param, kind)"
        f" SELECT resource_type, param, {_kind_number('kind')} FROM search_index"
        " GROUP BY resource_type, param, kind ORDER BY resource_type, param, kind"
    )
    _drop_indexes()
    _set_aside()
    op.create_table(
        "search_index",
        sa.Column("row_id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("resource_key", BIG_ID, nullable=False),
        sa.Column("value_date_start", UTC_TIME, nullable=True),
        sa.Column("value_date_end", UTC_TIME, nullable=True),
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
        *_keys(),
    )
    op.execute(
        f"INSERT INTO search_index ({_VALUES}, param_id, kind)"
        f" SELECT {_prefixed('o')}, p.param_id, p.kind FROM search_index_old o"
        " JOIN search_param p ON p.resource_type = o.resource_type AND p.param = o.param"
        f" AND p.kind = {_kind_number('o.kind')}"
    )
    _finish()
    for name, kind, columns, extra in _INDEXES:
        where = sa.text(f"kind = {KINDS[kind]}")
        op.create_index(
            name,
            "search_index",
            ["param_id", *columns, "resource_key"],
            postgresql_where=where,
            sqlite_where=where,
            **extra,  # type: ignore[arg-type]
        )
    op.create_index("ix_search_index_resource", "search_index", ["resource_key"])


def downgrade() -> None:
    _drop_indexes()
    _set_aside()
    op.create_table(
        "search_index",
        sa.Column("row_id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("resource_type", sa.String(64), nullable=False),
        sa.Column("resource_key", BIG_ID, nullable=False),
        sa.Column("param", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("system_id", sa.Integer(), nullable=True),
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
        *_keys(),
    )
    op.execute(
        f"INSERT INTO search_index ({_VALUES}, resource_type, param, kind)"
        f" SELECT {_prefixed('o')}, p.resource_type, p.param, {_kind_name('p.kind')}"
        " FROM search_index_old o JOIN search_param p ON p.param_id = o.param_id"
    )
    _finish()
    for name, kind, columns, extra in _INDEXES:
        where = sa.text(f"kind = '{kind}'")
        op.create_index(
            name,
            "search_index",
            ["resource_type", "param", *columns, "resource_key"],
            postgresql_where=where,
            sqlite_where=where,
            **extra,  # type: ignore[arg-type]
        )
    op.create_index("ix_search_index_resource", "search_index", ["resource_key"])
    op.drop_table("search_param")


def _drop_indexes() -> None:
    for name, _, _, _ in _INDEXES:
        op.drop_index(name, table_name="search_index")
    op.drop_index("ix_search_index_resource", table_name="search_index")


def _set_aside() -> None:
    """The old table renamed, with the names the new one takes (PostgreSQL's sequence and
    SQLite's foreign key)."""
    op.rename_table("search_index", "search_index_old")
    if _postgres():
        op.execute("ALTER SEQUENCE search_index_row_id_seq RENAME TO search_index_old_row_id_seq")


def _keys() -> list[sa.Constraint]:
    """The row id's key and the foreign key to resource: SQLite's only (0021, 0024)."""
    return [
        sa.ForeignKeyConstraint(
            ["resource_key"],
            ["resource.resource_key"],
            ondelete="CASCADE",
            name="fk_search_index_resource_key_resource",
        ).ddl_if(dialect="sqlite"),
        sa.PrimaryKeyConstraint("row_id", name="pk_search_index").ddl_if(dialect="sqlite"),
    ]


def _finish() -> None:
    """The old table dropped; PostgreSQL's sequence continues after the copied row ids."""
    op.drop_table("search_index_old")
    if _postgres():
        op.execute(
            "SELECT setval('search_index_row_id_seq', (SELECT coalesce(max(row_id), 0) + 1"
            " FROM search_index), false)"
        )

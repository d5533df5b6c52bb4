"""Search index rows name their resource by an integer (decision 0055): every resource
gets ``resource.resource_key`` (unique), and ``search_index`` holds it in place of
``resource_id`` in every row and every index entry.

``resource``: the column is added in place, keys given in (type, id) order. SQLite cannot
add a NOT NULL column without a default, so it has ``DEFAULT 0`` there (the store always
gives the key); rebuilding ``resource`` instead would, with the foreign keys on, cascade
the drop of the old table into the history and the index (as 0017 explains). PostgreSQL:
the sequence ``resource_key_seq`` gives the keys and is the column's default.

``search_index`` is rebuilt: a new table, the rows copied with their row ids (a sort's
tie-break) and their resource's key, the old table dropped, the indexes built once at the
end. The rows and every index shrink (bench/README.md, decision 0055).

Downgrade: the index rebuilt with ``resource_id`` from the resource rows, the key column
and its sequence dropped.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | Sequence[str] | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Plain types on purpose: a migration must not change when application code changes.
UTC_TIME = sa.DateTime(timezone=True)
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

_KINDS: tuple[tuple[str, list[str], dict[str, object]], ...] = (
    ("token", ["code", "system"], {}),
    ("uri", ["code"], {}),
    ("string", ["value_norm"], {"postgresql_ops": {"value_norm": "text_pattern_ops"}}),
    ("date", ["value_date_start", "value_date_end"], {}),
    ("quantity", ["value_number"], {}),
    ("reference", ["reference"], {}),
)
_VALUES = (
    "param, kind, system, code, value, value_norm, value_date_start, value_date_end, "
    "value_number, reference, system_full, code_full, value_norm_full, reference_full"
)


def _postgres() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    if _postgres():
        op.execute("CREATE SEQUENCE resource_key_seq")
        op.add_column("resource", sa.Column("resource_key", sa.BigInteger(), nullable=True))
        op.execute(
            "UPDATE resource SET resource_key = k.n FROM (SELECT resource_type, id,"
            " row_number() OVER (ORDER BY resource_type, id) AS n FROM resource) k"
            " WHERE resource.resource_type = k.resource_type AND resource.id = k.id"
        )
        op.execute(
            "SELECT setval('resource_key_seq', (SELECT coalesce(max(resource_key), 0) + 1"
            " FROM resource), false)"
        )
        op.execute("ALTER TABLE resource ALTER COLUMN resource_key SET NOT NULL")
        op.execute(
            "ALTER TABLE resource ALTER COLUMN resource_key SET DEFAULT nextval('resource_key_seq')"
        )
        op.execute("ALTER SEQUENCE resource_key_seq OWNED BY resource.resource_key")
    else:
        op.execute("ALTER TABLE resource ADD COLUMN resource_key INTEGER NOT NULL DEFAULT 0")
        op.execute(
            "UPDATE resource SET resource_key = (SELECT n FROM (SELECT resource_type, id,"
            " row_number() OVER (ORDER BY resource_type, id) AS n FROM resource) k"
            " WHERE k.resource_type = resource.resource_type AND k.id = resource.id)"
        )
    op.create_index("ix_resource_resource_key", "resource", ["resource_key"], unique=True)
    _rebuild_index(
        sa.Column("resource_key", BIG_ID, nullable=False),
        sa.ForeignKeyConstraint(
            ["resource_key"],
            ["resource.resource_key"],
            ondelete="CASCADE",
            name="fk_search_index_resource_key_resource",
        ),
        copy=(
            f"INSERT INTO search_index (row_id, resource_type, resource_key, {_VALUES})"
            f" SELECT o.row_id, o.resource_type, r.resource_key, {_prefixed('o')}"
            " FROM search_index_old o JOIN resource r"
            " ON r.resource_type = o.resource_type AND r.id = o.resource_id"
        ),
        key="resource_key",
    )


def downgrade() -> None:
    _rebuild_index(
        sa.Column("resource_id", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(
            ["resource_type", "resource_id"],
            ["resource.resource_type", "resource.id"],
            ondelete="CASCADE",
            name="fk_search_index_resource_type_resource_id_resource",
        ),
        copy=(
            f"INSERT INTO search_index (row_id, resource_type, resource_id, {_VALUES})"
            f" SELECT o.row_id, o.resource_type, r.id, {_prefixed('o')}"
            " FROM search_index_old o JOIN resource r ON r.resource_key = o.resource_key"
        ),
        key="resource_id",
    )
    op.drop_index("ix_resource_resource_key", table_name="resource")
    op.execute("ALTER TABLE resource DROP COLUMN resource_key")  # SQLite 3.35+
    if _postgres():
        op.execute("DROP SEQUENCE IF EXISTS resource_key_seq")


def _prefixed(alias: str) -> str:
    return ", ".join(f"{alias}.{name.strip()}" for name in _VALUES.split(","))


def _rebuild_index(
    key_column: sa.Column[object], foreign_key: sa.ForeignKeyConstraint, *, copy: str, key: str
) -> None:
    """search_index as a new table with ``key_column`` naming the resource: the old one
    renamed (its indexes dropped, names freed), the rows copied by ``copy``, the old one
    dropped, then the indexes built once."""
    for kind, _, _ in _KINDS:
        op.drop_index(f"ix_search_index_{kind}", table_name="search_index")
    op.drop_index("ix_search_index_date_end", table_name="search_index")
    op.drop_index("ix_search_index_resource", table_name="search_index")
    op.rename_table("search_index", "search_index_old")
    if _postgres():  # index and sequence names are the schema's, not the table's
        op.execute("ALTER INDEX pk_search_index RENAME TO pk_search_index_old")
        op.execute("ALTER SEQUENCE search_index_row_id_seq RENAME TO search_index_old_row_id_seq")
    op.create_table(
        "search_index",
        sa.Column("row_id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("resource_type", sa.String(64), nullable=False),
        key_column,
        sa.Column("param", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("system", sa.Text(), nullable=True),
        sa.Column("code", sa.Text(), nullable=True),
        sa.Column("value", sa.Text(), nullable=True),
        sa.Column("value_norm", sa.Text(), nullable=True),
        sa.Column("value_date_start", UTC_TIME, nullable=True),
        sa.Column("value_date_end", UTC_TIME, nullable=True),
        sa.Column("value_number", sa.Float(), nullable=True),
        sa.Column("reference", sa.Text(), nullable=True),
        sa.Column("system_full", sa.Text(), nullable=True),
        sa.Column("code_full", sa.Text(), nullable=True),
        sa.Column("value_norm_full", sa.Text(), nullable=True),
        sa.Column("reference_full", sa.Text(), nullable=True),
        foreign_key,
        sa.PrimaryKeyConstraint("row_id", name="pk_search_index"),
    )
    op.execute(copy)
    op.drop_table("search_index_old")
    if _postgres():
        op.execute(
            "SELECT setval('search_index_row_id_seq', (SELECT coalesce(max(row_id), 0) + 1"
            " FROM search_index), false)"
        )
    for kind, columns, extra in _KINDS:
        where = sa.text(f"kind = '{kind}'")
        op.create_index(
            f"ix_search_index_{kind}",
            "search_index",
            ["resource_type", "param", *columns, key],
            postgresql_where=where,
            sqlite_where=where,
            **extra,  # type: ignore[arg-type]
        )
    where = sa.text("kind = 'date'")
    op.create_index(
        "ix_search_index_date_end",
        "search_index",
        ["resource_type", "param", "value_date_end", key],
        postgresql_where=where,
        sqlite_where=where,
    )
    resource = [key] if key == "resource_key" else ["resource_type", key]
    op.create_index("ix_search_index_resource", "search_index", resource)

"""PostgreSQL: ``search_index.row_id`` is the row's number among its resource's rows, a
``smallint`` stored after ``kind`` (decision 0098).

A row's ``row_id`` only breaks a sort's tie between two rows of one resource (the sort's
rivals compare the ids of rows of one resource and parameter, adapter/store/search_order.py).
It was a ``bigint`` from a sequence and led the row: 8 bytes and a nextval per row. The
store now numbers each resource's rows (0, 1, ... in the order written; -1, -2, ... for a
bulk batch's transient rows) as it has on SQLite since decision 0085, and the column is a
``smallint`` next to ``kind``: the two take 4 bytes where they took 10.

PostgreSQL keeps a table's column order, so the table is copied (as 0038 copied the
outbox): each resource's rows numbered in their old ``row_id`` order (the same order, so
every sort answers the same), the sequence dropped with the old table, the eight indexes
made again as they were, then ``ANALYZE``. Refused, nothing changed, if a resource has more
rows than a smallint numbers (32,768).

SQLite: nothing changes (its ``row_id`` is that number already).

Downgrade (to 0040): the table copied back into 0040's column order, the rows numbered
over the table in (resource, row id) order (each resource's rows keep their order, as
0037's downgrade numbers them) by a new ``search_index_row_id_seq``, which continues after
them and is the column's default again.

Revision ID: 0042
Revises: 0040
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0042"
down_revision: str | Sequence[str] | None = "0040"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Plain names on purpose: a migration must not change when application code does.
_ROWS_MAX = 32768  # row_id 0 .. 32,767

# the columns after ``row_id`` (name, type), in 0040's order (target_key added by 0033)
_VALUES_0040 = (
    ("resource_key", "bigint NOT NULL"),
    ("value_date_start", "timestamp with time zone"),
    ("value_date_end", "timestamp with time zone"),
    ("value_number", "double precision"),
    ("param_id", "integer NOT NULL"),
    ("system_id", "integer"),
    ("kind", "smallint NOT NULL"),
    ("code", "text"),
    ("value", "text"),
    ("value_norm", "text"),
    ("reference", "text"),
    ("code_full", "text"),
    ("value_norm_full", "text"),
    ("reference_full", "text"),
    ("target_key", "bigint"),
)
_FIRST = (  # 8 bytes, then 4, then 2 (kind and the row's number), then the texts
    "resource_key", "value_date_start", "value_date_end", "value_number", "target_key",
    "param_id", "system_id", "kind", "row_id", "code", "value", "value_norm", "reference",
    "code_full", "value_norm_full", "reference_full",
)  # fmt: skip
_0042 = tuple(
    sorted((*_VALUES_0040, ("row_id", "smallint NOT NULL")), key=lambda c: _FIRST.index(c[0]))
)
_0040 = (("row_id", "bigint NOT NULL"), *_VALUES_0040)

_INDEXES = (
    "CREATE INDEX ix_search_index_resource ON search_index (resource_key)",
    "CREATE INDEX ix_search_index_token ON search_index"
    " (param_id, code, system_id, resource_key) WHERE kind = 1",
    "CREATE INDEX ix_search_index_uri ON search_index (param_id, code, resource_key)"
    " WHERE kind = 6",
    "CREATE INDEX ix_search_index_string ON search_index"
    " (param_id, value_norm text_pattern_ops, resource_key) WHERE kind = 2",
    "CREATE INDEX ix_search_index_date ON search_index"
    " (param_id, value_date_start, value_date_end, resource_key) WHERE kind = 3",
    "CREATE INDEX ix_search_index_date_end ON search_index"
    " (param_id, value_date_end, resource_key) WHERE kind = 3",
    "CREATE INDEX ix_search_index_quantity ON search_index"
    " (param_id, value_number, resource_key) WHERE kind = 5",
    "CREATE INDEX ix_search_index_reference ON search_index"
    " (param_id, reference, resource_key) WHERE kind = 4 AND reference IS NOT NULL",
)


def _copy(columns: tuple[tuple[str, str], ...], number: str) -> None:
    """search_index copied into a table with ``columns`` in that order, ``row_id`` given by
    ``number`` (an expression over the old table), the indexes made again."""
    names = ", ".join(name for name, _ in columns)
    values = ", ".join(number if name == "row_id" else name for name, _ in columns)
    typed = ",\n".join(f"{name} {kind}" for name, kind in columns)
    op.execute(f"CREATE TABLE search_index_copy (\n{typed}\n)")
    op.execute(
        f"INSERT INTO search_index_copy ({names}) SELECT {values} FROM search_index"
        " ORDER BY resource_key, row_id"
    )
    op.execute("DROP TABLE search_index")  # its indexes, and its sequence (OWNED BY)
    op.execute("ALTER TABLE search_index_copy RENAME TO search_index")
    for statement in _INDEXES:
        op.execute(statement)


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        "DO $$ BEGIN IF EXISTS (SELECT 1 FROM search_index GROUP BY resource_key"
        f" HAVING count(*) > {_ROWS_MAX}) THEN RAISE EXCEPTION 'migration 0042: a resource"
        f" has more than {_ROWS_MAX} search_index rows (row_id is a smallint)'; END IF; END $$"
    )
    _copy(
        _0042,
        "(row_number() OVER (PARTITION BY resource_key ORDER BY row_id) - 1)::smallint",
    )
    op.execute("ANALYZE search_index")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    _copy(_0040, "row_number() OVER (ORDER BY resource_key, row_id)")
    op.execute("CREATE SEQUENCE search_index_row_id_seq OWNED BY search_index.row_id")
    op.execute(
        "SELECT setval('search_index_row_id_seq', "
        "(SELECT coalesce(max(row_id), 0) + 1 FROM search_index), false)"
    )
    op.execute(
        "ALTER TABLE search_index ALTER COLUMN row_id"
        " SET DEFAULT nextval('search_index_row_id_seq'::regclass)"
    )
    op.execute("ANALYZE search_index")

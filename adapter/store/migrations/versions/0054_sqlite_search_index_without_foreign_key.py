"""SQLite: ``search_index.resource_key`` without its foreign key to ``resource`` (decision
0147), as PostgreSQL has been since migration 0021 (decision 0060).

With ``PRAGMA foreign_keys=ON`` SQLite looked the parent row up in ``resource``'s key index
for every index row inserted: about 1,500 instructions a row, 0.12 M a lab message of the
one-process bulk. The rows are written only by the store, with their resource, and no code
deletes resource rows (tests/integration/test_index_orphans.py holds both), so the check
and the ``ON DELETE CASCADE`` had nothing left to do.

SQLite cannot drop a constraint: the table is rebuilt (SQLite's own procedure, as 0036 did;
the migrations run with the foreign keys off): a new table with the same columns, key and
``WITHOUT ROWID``, the rows copied in key order, the old table dropped, the new one renamed,
the eight partial indexes built again. Every row keeps every value. PostgreSQL: nothing.

Downgrade (SQLite): rebuilt again with the foreign key (a row whose resource is missing then
fails the migration, ``adapter.store.engine``'s check of the foreign keys it added).

Revision ID: 0054
Revises: 0053
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0054"
down_revision: str | Sequence[str] | None = "0053"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Plain names and types on purpose: a migration must not change when application code does.
_COLUMNS = (
    "row_id, resource_key, value_date_start, value_date_end, value_number, target_key,"
    " param_id, system_id, kind, code, value, value_norm, reference, code_full,"
    " value_norm_full, reference_full"
)
_TABLE = """CREATE TABLE search_index_0054 (
    row_id INTEGER NOT NULL,
    resource_key INTEGER NOT NULL,
    value_date_start BIGINT,
    value_date_end BIGINT,
    value_number FLOAT,
    target_key BIGINT,
    param_id INTEGER NOT NULL,
    system_id INTEGER,
    kind SMALLINT NOT NULL,
    code TEXT,
    value TEXT,
    value_norm TEXT,
    reference TEXT,
    code_full TEXT,
    value_norm_full TEXT,
    reference_full TEXT,
    CONSTRAINT pk_search_index PRIMARY KEY (resource_key, kind, row_id){foreign_key}
) WITHOUT ROWID"""
_FOREIGN_KEY = (
    ",\n    CONSTRAINT fk_search_index_resource_key_resource FOREIGN KEY(resource_key)"
    " REFERENCES resource (resource_key) ON DELETE CASCADE"
)
# (name, kind, columns between param_id and resource_key, extra predicate): 0036's
_INDEXES: tuple[tuple[str, int, str, str], ...] = (
    ("ix_search_index_token", 1, "code, system_id", ""),
    ("ix_search_index_uri", 6, "code", ""),
    ("ix_search_index_string", 2, "value_norm", ""),
    ("ix_search_index_date", 3, "value_date_start, value_date_end", ""),
    ("ix_search_index_date_end", 3, "value_date_end", ""),
    ("ix_search_index_quantity", 5, "value_number", ""),
    ("ix_search_index_reference", 4, "reference", " AND reference IS NOT NULL"),
    ("ix_search_index_target", 4, "target_key", " AND target_key IS NOT NULL"),
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild(foreign_key=False)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild(foreign_key=True)


def _rebuild(*, foreign_key: bool) -> None:
    """search_index copied into a table like it, with or without the foreign key."""
    op.execute(_TABLE.format(foreign_key=_FOREIGN_KEY if foreign_key else ""))
    # in the key's order: the b-tree is filled from left to right
    op.execute(
        f"INSERT INTO search_index_0054 ({_COLUMNS}) SELECT {_COLUMNS} FROM search_index"
        " ORDER BY resource_key, kind, row_id"
    )
    op.execute("DROP TABLE search_index")  # and its indexes, whose names are built again now
    op.execute("ALTER TABLE search_index_0054 RENAME TO search_index")
    for name, kind, columns, where in _INDEXES:
        op.execute(
            f"CREATE INDEX {name} ON search_index (param_id, {columns}, resource_key)"
            f" WHERE kind = {kind}{where}"
        )

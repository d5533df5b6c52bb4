"""PostgreSQL: audit_link found through a hash index of each link's entity (decision 0092).

audit_link's primary key ``(kind, reference, seq)`` was a b-tree as large as the table (0.6
KB per lab message: 9.6 links, each a random 18-byte reference, the pages split half-full).
It becomes a hash index of each link's entity: the stored reference without its version
(a packed reference's first 18 bytes, a text one's bytes before its first ``/_history/``),
about 20 bytes an entry. The patient and entity searches (and the disclosure report) name
that entity and keep their condition on ``reference``, so they find the same links. The
key's uniqueness was never needed: the writer inserts a record's links once, as a set.

SQLite: nothing changes (the table is its key, ``WITHOUT ROWID``).

Downgrade: the hash index dropped, the primary key made again (its b-tree built anew).

Written not to depend on migration 0039 (another change's): only audit_link is touched.

Revision ID: 0040
Revises: 0038
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0040"
down_revision: str | Sequence[str] | None = "0038"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Plain text on purpose: a migration must not change when application code does (the same
# expression as adapter/store/audit_reference.py's ENTITY_SQL over ``reference``)
_AT = "POSITION(('\\x2f5f686973746f72792f'::bytea) IN (reference))"
_ENTITY = (
    "\nCASE\n"
    "    WHEN SUBSTRING(reference FROM 1 FOR 1) = '\\x01'::bytea AND length(reference) >= 18"
    " THEN SUBSTRING(reference FROM 1 FOR 18)\n"
    f"    WHEN {_AT} > 0 THEN SUBSTRING(reference FROM 1 FOR {_AT} - 1)\n"
    "    ELSE reference\n"
    "END"
)


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"CREATE INDEX ix_audit_link_entity ON audit_link USING hash (({_ENTITY}))")
    op.execute("ALTER TABLE audit_link DROP CONSTRAINT pk_audit_link")
    op.execute("ANALYZE audit_link")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        "ALTER TABLE audit_link ADD CONSTRAINT pk_audit_link PRIMARY KEY (kind, reference, seq)"
    )
    op.execute("DROP INDEX ix_audit_link_entity")

"""Resource bodies compressed: ``resource.body`` and ``resource_version.body`` hold zstd
frames made with a dictionary shipped in the package (decision 0049,
adapter/store/body_codec.py). Bodies already stored stay plain JSON and are read as such;
``adapter store compact`` compresses them when convenient.

PostgreSQL: both columns become ``bytea``, the old text kept as its UTF-8 bytes (the
ALTER rewrites each table once, under an exclusive lock). SQLite: no change; its TEXT
columns store the frames as BLOB values (a BLOB keeps its storage class whatever the
column's affinity), and declaring BLOB would need ``resource`` rebuilt, which with the
foreign keys on would cascade the drop of the old table into the index and history.

Downgrade: every frame is written back as plain JSON text (decompressed in Python, in
batches), then PostgreSQL's columns become ``text`` again.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0017"
down_revision: str | Sequence[str] | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLES = ("resource", "resource_version")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in _TABLES:
        op.execute(
            f"ALTER TABLE {table} ALTER COLUMN body TYPE bytea USING convert_to(body, 'UTF8')"
        )


def downgrade() -> None:
    from adapter.store.body_rewrite import rewrite_bodies

    conn = op.get_bind()
    for table in _TABLES:
        rewrite_bodies(conn, table, compress=False)
    if conn.dialect.name != "postgresql":
        return
    for table in _TABLES:
        op.execute(
            f"ALTER TABLE {table} ALTER COLUMN body TYPE text USING convert_from(body, 'UTF8')"
        )

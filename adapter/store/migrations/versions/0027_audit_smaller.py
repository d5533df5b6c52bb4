"""A smaller audit log (decision 0072):

* ``audit_record.body`` holds a zstd frame of the canonical text, made with the audit
  dictionary shipped in the package (adapter/store/body_codec.py); it is read back as the
  exact text the hash chain is over. Rows stored before stay plain text and read as such
  (they leave the table with the audit retention: archive, purge). PostgreSQL: the column
  becomes ``bytea`` (the old text kept as its UTF-8 bytes; the ALTER rewrites the table
  once under an exclusive lock). SQLite: no change (a TEXT column stores a BLOB as a BLOB).
* ``ix_audit_record_actor`` is dropped (no query uses it: the agent search matches the
  actor or the client, and the client has no index) and ``ix_audit_record_message_id``
  covers receipts only (``WHERE action = 'message.received'``: the writer's correlation
  lookup is the only query by message).
* ``audit_link``'s key becomes ``(kind, reference, seq)`` (the searches by patient or
  entity, the disclosure report) and ``seq`` gets an index of its own (verify, archive,
  purge), replacing ``ix_audit_link_kind_reference_seq``. SQLite: the table is rebuilt
  ``WITHOUT ROWID`` (its key is then the table: one b-tree fewer); PostgreSQL: the key is
  rebuilt in place, ``reference`` in the "C" collation (bytewise, as SQLite's: the search
  for every version of an entity is a range of the key).

Downgrade: every frame is written back as plain text (in Python, in batches), PostgreSQL's
column becomes ``text`` again, the indexes and audit_link's key are as before.

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0027"
down_revision: str | Sequence[str] | None = "0026"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_RECEIPT = "action = 'message.received'"


def _link_table(name: str, key: str, *, rowid: bool) -> str:
    return (
        f"CREATE TABLE {name} ("
        "seq BIGINT NOT NULL, kind VARCHAR(16) NOT NULL, reference VARCHAR(160) NOT NULL, "
        f"CONSTRAINT pk_audit_link PRIMARY KEY ({key}), "
        "CONSTRAINT fk_audit_link_seq_audit_record FOREIGN KEY(seq) "
        "REFERENCES audit_record (seq))" + ("" if rowid else " WITHOUT ROWID")
    )


def _rebuild_links_sqlite(key: str, *, rowid: bool) -> None:
    """audit_link copied into a new table with ``key`` as its primary key (SQLite can
    change neither a table's key nor its rowid in place)."""
    op.execute(_link_table("audit_link_0027", key, rowid=rowid))
    op.execute(
        "INSERT INTO audit_link_0027 (seq, kind, reference) "
        f"SELECT seq, kind, reference FROM audit_link ORDER BY {key}"
    )
    op.execute("DROP TABLE audit_link")  # its indexes with it
    op.execute("ALTER TABLE audit_link_0027 RENAME TO audit_link")


def upgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    if postgresql:
        op.execute(
            "ALTER TABLE audit_record ALTER COLUMN body TYPE bytea USING convert_to(body, 'UTF8')"
        )
    op.drop_index("ix_audit_record_actor", table_name="audit_record")
    op.drop_index("ix_audit_record_message_id", table_name="audit_record")
    op.execute(
        f"CREATE INDEX ix_audit_record_message_id ON audit_record (message_id) WHERE {_RECEIPT}"
    )
    if postgresql:
        op.execute("ALTER TABLE audit_link DROP CONSTRAINT pk_audit_link")
        op.drop_index("ix_audit_link_kind_reference_seq", table_name="audit_link")
        op.execute('ALTER TABLE audit_link ALTER COLUMN reference TYPE varchar(160) COLLATE "C"')
        op.execute(
            "ALTER TABLE audit_link ADD CONSTRAINT pk_audit_link PRIMARY KEY (kind, reference, seq)"
        )
    else:
        _rebuild_links_sqlite("kind, reference, seq", rowid=False)
    op.create_index("ix_audit_link_seq", "audit_link", ["seq"])


def downgrade() -> None:
    from adapter.store.body_rewrite import rewrite_bodies

    conn = op.get_bind()
    postgresql = conn.dialect.name == "postgresql"
    rewrite_bodies(conn, "audit_record", compress=False)
    if postgresql:
        op.execute(
            "ALTER TABLE audit_record ALTER COLUMN body TYPE text USING convert_from(body, 'UTF8')"
        )
    op.drop_index("ix_audit_record_message_id", table_name="audit_record")
    op.create_index("ix_audit_record_message_id", "audit_record", ["message_id"])
    op.create_index("ix_audit_record_actor", "audit_record", ["actor"])
    op.drop_index("ix_audit_link_seq", table_name="audit_link")
    if postgresql:
        op.execute("ALTER TABLE audit_link DROP CONSTRAINT pk_audit_link")
        op.execute(
            'ALTER TABLE audit_link ALTER COLUMN reference TYPE varchar(160) COLLATE "default"'
        )
        op.execute(
            "ALTER TABLE audit_link ADD CONSTRAINT pk_audit_link PRIMARY KEY (seq, kind, reference)"
        )
    else:
        _rebuild_links_sqlite("seq, kind, reference", rowid=True)
    op.create_index("ix_audit_link_kind_reference_seq", "audit_link", ["kind", "reference", "seq"])

"""PostgreSQL: the rows outside the search index in fewer bytes (decision 0089).

1. The three foreign keys to ``inbound_message`` (from ``resource``, ``resource_version``
   and ``outbox``) become ``DEFERRABLE INITIALLY IMMEDIATE``: checked as before, except in
   a bulk batch, which defers them to its commit (``SET CONSTRAINTS``) and writes each new
   message's row once, in its final form, after its resources (an INSERT then an UPDATE
   left a dead copy of every message row and new entries in its four indexes). A catalogue
   change: no row is rewritten, no constraint checked again.

2. ``ix_resource_resource_type_last_updated_id`` becomes ``(resource_type, last_updated)``
   (``ix_resource_resource_type_last_updated``): the id in each entry served no order (a
   search's default order is ``last_updated`` descending, ``id`` ascending: the index read
   backwards gives ids descending, so the ids of one instant were sorted anyway).

3. ``outbox`` is copied into a table with the same columns in an order that leaves no
   alignment padding: the 8-byte values first, then the 4- and 2-byte ones, then the
   variable-length ones (112 bytes a row where 128 were; PostgreSQL keeps a table's
   column order, so only a copy changes it). Its constraints, indexes, sequence and the
   delivery attempts' foreign key are made again as they were; every row keeps its id.

SQLite: nothing changes (its UPDATE rewrites the row in place; its bulk path is unchanged).

Downgrade (to 0037): the outbox copied back into 0036's column order, the constraints ``NOT
DEFERRABLE`` again, the index with ``id`` again.

Revision ID: 0038
Revises: 0037
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0038"
down_revision: str | Sequence[str] | None = "0037"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Plain names on purpose: a migration must not change when application code does.
# (the outbox's is made again by its copy, ``_copy_outbox``)
_MESSAGE_KEYS = (
    ("resource", "fk_resource_message_id_inbound_message"),
    ("resource_version", "fk_resource_version_message_id_inbound_message"),
)

_LAST_UPDATED_ID = "ix_resource_resource_type_last_updated_id"
_LAST_UPDATED = "ix_resource_resource_type_last_updated"


# the outbox's columns (name, type) in 0036's order (columns added by later migrations last)
_OUTBOX_0036 = (
    ("id", "bigint NOT NULL"),
    ("version_id", "integer NOT NULL"),
    ("state", "smallint NOT NULL"),
    ("attempts", "integer NOT NULL"),
    ("next_attempt_at", "timestamp with time zone NOT NULL"),
    ("created_at", "timestamp with time zone NOT NULL"),
    ("last_error", "text"),
    ("message_id", "bytea"),
    ("order_key", "bigint NOT NULL"),
    ("claimed_by", "character varying(128)"),
    ("claimed_until", "timestamp with time zone"),
    ("first_attempt_at", "timestamp with time zone"),
    ("last_attempt_at", "timestamp with time zone"),
    ("delivered_at", "timestamp with time zone"),
    ("last_status", "character varying(32)"),
    ("sent_version_id", "integer"),
    ("reason", "text"),
    ("person_id", "character varying(64)"),
    ("care_facility", "character varying(64)"),
    ("sequence", "bigint"),
    ("destination_id", "integer NOT NULL"),
    ("resource_key", "bigint NOT NULL"),
)
_FIRST = (  # 8 bytes, then 4, then 2, then the variable-length columns
    "id", "resource_key", "order_key", "next_attempt_at", "created_at", "claimed_until",
    "first_attempt_at", "last_attempt_at", "delivered_at", "sequence", "destination_id",
    "version_id", "attempts", "sent_version_id", "state", "message_id", "reason",
    "last_error", "claimed_by", "last_status", "person_id", "care_facility",
)  # fmt: skip
_OUTBOX_0038 = tuple(sorted(_OUTBOX_0036, key=lambda c: _FIRST.index(c[0])))


def _copy_outbox(columns: tuple[tuple[str, str], ...], *, deferrable: bool) -> None:
    """The outbox copied into a table with ``columns`` in that order, every row and id kept,
    and everything else made again as 0036 (and 0038's deferrable key) had it."""
    names = ", ".join(name for name, _ in columns)
    typed = ",\n".join(f"{name} {kind}" for name, kind in columns)
    deferred = " DEFERRABLE INITIALLY IMMEDIATE" if deferrable else ""
    for statement in (
        f"CREATE TABLE outbox_copy (\n{typed}\n)",
        f"INSERT INTO outbox_copy ({names}) SELECT {names} FROM outbox ORDER BY id",
        "ALTER TABLE delivery_attempt DROP CONSTRAINT fk_delivery_attempt_outbox_id_outbox",
        "ALTER SEQUENCE outbox_id_seq OWNED BY NONE",  # else dropped with the table
        "DROP TABLE outbox",
        "ALTER TABLE outbox_copy RENAME TO outbox",
        "ALTER SEQUENCE outbox_id_seq OWNED BY outbox.id",
        "ALTER TABLE outbox ALTER COLUMN id SET DEFAULT nextval('outbox_id_seq'::regclass)",
        "ALTER TABLE outbox ADD CONSTRAINT pk_outbox PRIMARY KEY (id)",
        "ALTER TABLE outbox ADD CONSTRAINT ck_outbox_state CHECK (state IN (1, 2, 3, 4))",
        "ALTER TABLE outbox ADD CONSTRAINT fk_outbox_message_id_inbound_message FOREIGN KEY"
        f" (message_id) REFERENCES inbound_message (id) ON DELETE SET NULL{deferred}",
        "CREATE INDEX ix_outbox_state_next_attempt_at ON outbox (state, next_attempt_at)",
        "CREATE INDEX ix_outbox_destination_id_state_order_key"
        " ON outbox (destination_id, state, order_key)",
        "CREATE INDEX ix_outbox_message_id ON outbox (message_id)",
        "CREATE UNIQUE INDEX uq_outbox_destination_sequence ON outbox (destination_id, sequence)"
        " WHERE sequence IS NOT NULL",
        "ALTER TABLE delivery_attempt ADD CONSTRAINT fk_delivery_attempt_outbox_id_outbox"
        " FOREIGN KEY (outbox_id) REFERENCES outbox (id) ON DELETE CASCADE",
        "ANALYZE outbox",  # the claim's plans need the statistics a new table lacks
    ):
        op.execute(statement)


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, name in _MESSAGE_KEYS:
        op.execute(f"ALTER TABLE {table} ALTER CONSTRAINT {name} DEFERRABLE INITIALLY IMMEDIATE")
    op.create_index(_LAST_UPDATED, "resource", ["resource_type", "last_updated"])
    op.drop_index(_LAST_UPDATED_ID, table_name="resource")
    _copy_outbox(_OUTBOX_0038, deferrable=True)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    _copy_outbox(_OUTBOX_0036, deferrable=False)
    for table, name in _MESSAGE_KEYS:
        op.execute(f"ALTER TABLE {table} ALTER CONSTRAINT {name} NOT DEFERRABLE")
    op.create_index(_LAST_UPDATED_ID, "resource", ["resource_type", "last_updated", "id"])
    op.drop_index(_LAST_UPDATED, table_name="resource")

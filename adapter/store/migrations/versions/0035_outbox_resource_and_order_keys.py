"""The outbox row names its resource and its queue by integers (decision 0084).

* ``outbox.resource_type`` and ``resource_id`` become ``resource_key``: the resource's
  ``resource.resource_key`` (its type, id and patient are read through it).
* ``outbox.order_key`` (the patient's ``Patient/<id>``, or the resource's own ``Type/id``)
  becomes the first 8 bytes of that text's SHA-256 as a signed BIGINT
  (``adapter.store.outbox.enqueue.order_hash``).

A row whose resource the store does not have stops the upgrade (nothing is changed): its
resource could not be read any more. SQLite: the outbox is copied once into its new form
(its ``CREATE TABLE`` with the changed columns; foreign keys off, the attempts stay); the
hash is a Python function of the migration's connection. PostgreSQL: ``resource_key`` is
filled by one UPDATE, then one ``ALTER TABLE`` drops the two columns and retypes
``order_key`` (one rewrite; ``sha256()`` of PostgreSQL 11+).

Downgrade: the type and id back from ``resource``; the order key's text is the one of the
resource's patient key and its own ``Type/id`` whose hash it is (a row whose resource has
since changed patient gets its current patient's).

Revision ID: 0035
Revises: 0034
Create Date: 2026-12-05
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0035"
down_revision: str | Sequence[str] | None = "0034"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_QUEUE = "ix_outbox_destination_id_state_order_key"
_HASH = "outbox_order_hash"  # SQLite: the Python function registered for this migration
_OLD_COLUMNS = "\tresource_type VARCHAR(64) NOT NULL, \n\tresource_id VARCHAR(64) NOT NULL, \n"
_NEW_COLUMNS = "\tresource_key BIGINT NOT NULL, \n"
_OLD_ORDER = "\torder_key VARCHAR(129) NOT NULL, \n"
_NEW_ORDER = "\torder_key BIGINT NOT NULL, \n"


def order_hash(text: str | None) -> int | None:
    """As ``enqueue.order_hash`` (kept here: a migration does not import the code it
    migrates from)."""
    if text is None:
        return None
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big", signed=True)


def _pg_hash(column: str) -> str:
    return (
        f"('x' || left(encode(sha256(convert_to({column}, 'UTF8')), 'hex'), 16))::bit(64)::bigint"
    )


def _sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def _hash(column: str) -> str:
    return f"{_HASH}({column})" if _sqlite() else _pg_hash(column)


def _register_hash() -> None:
    raw = op.get_bind().connection.dbapi_connection
    raw.create_function(_HASH, 1, order_hash, deterministic=True)  # type: ignore[union-attr]


def _check_resources() -> None:
    """Every row's resource must be stored: else nothing is changed."""
    missing = op.get_bind().scalar(
        sa.text(
            "SELECT count(*) FROM outbox o WHERE NOT EXISTS (SELECT 1 FROM resource r"
            " WHERE r.resource_type = o.resource_type AND r.id = o.resource_id)"
        )
    )
    if missing:
        raise RuntimeError(
            f"{missing} outbox rows name a resource the store does not have; migration 0035"
            " needs each row's resource_key (nothing was changed)"
        )


def _rebuild_sqlite(new: bool) -> None:
    """Copy the outbox into its 0035 (``new``) or 0034 form: the table's own CREATE TABLE
    with the changed columns, so everything else stays exactly as it was."""
    bind = op.get_bind()
    made = bind.scalar(
        sa.text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'outbox'")
    )
    before, after = (_OLD_COLUMNS, _NEW_COLUMNS) if new else (_NEW_COLUMNS, _OLD_COLUMNS)
    order_before, order_after = (_OLD_ORDER, _NEW_ORDER) if new else (_NEW_ORDER, _OLD_ORDER)
    if made.count(before) != 1 or made.count(order_before) != 1:
        raise RuntimeError("migration 0035: the outbox table is not in the form expected")
    made = made.replace(before, after).replace(order_before, order_after)
    made = re.sub(r'^CREATE TABLE "?outbox"?', "CREATE TABLE outbox_rebuilt", made)
    op.execute(made)
    columns = [row[1] for row in bind.execute(sa.text("PRAGMA table_info(outbox_rebuilt)"))]
    resource = "(SELECT r.{} FROM resource r WHERE {})"
    if new:
        by_key = "r.resource_type = outbox.resource_type AND r.id = outbox.resource_id"
        converted = {
            "resource_key": resource.format("resource_key", by_key),
            "order_key": _hash("order_key"),
        }
    else:
        by_key = "r.resource_key = outbox.resource_key"
        converted = {
            "resource_type": resource.format("resource_type", by_key),
            "resource_id": resource.format("id", by_key),
            "order_key": _order_text(resource, by_key),
        }
    names = ", ".join(columns)
    select = ", ".join(converted.get(c, c) for c in columns)
    op.execute(f"INSERT INTO outbox_rebuilt ({names}) SELECT {select} FROM outbox")
    op.execute("DROP TABLE outbox")  # foreign keys off: the attempts stay
    op.execute("ALTER TABLE outbox_rebuilt RENAME TO outbox")
    op.create_index("ix_outbox_state_next_attempt_at", "outbox", ["state", "next_attempt_at"])
    op.create_index("ix_outbox_message_id", "outbox", ["message_id"])
    numbered = sa.text("sequence IS NOT NULL")
    op.create_index(
        "uq_outbox_destination_sequence",
        "outbox",
        ["destination_id", "sequence"],
        unique=True,
        sqlite_where=numbered,
    )


def _order_text(resource: str, by_key: str) -> str:
    """The order key's text back: the resource's patient key or its own ``Type/id``, the
    one whose hash the row holds (else, the patient having changed since, the current one's)."""
    patient = resource.format("patient_key", by_key)
    rtype = resource.format("resource_type", by_key)
    rid = resource.format("id", by_key)
    own = f"({rtype} || '/' || {rid})"
    return (
        f"CASE WHEN {_hash(patient)} = order_key THEN {patient}"
        f" WHEN {_hash(own)} = order_key THEN {own}"
        f" ELSE coalesce({patient}, {own}) END"
    )


def upgrade() -> None:
    _check_resources()
    op.drop_index(_QUEUE, "outbox")
    if _sqlite():
        _register_hash()
        _rebuild_sqlite(new=True)
    else:
        op.add_column("outbox", sa.Column("resource_key", sa.BigInteger(), nullable=True))
        op.execute(
            "UPDATE outbox SET resource_key = r.resource_key FROM resource r"
            " WHERE r.resource_type = outbox.resource_type AND r.id = outbox.resource_id"
        )
        # one rewrite of the table (the dropped columns' space goes with it)
        op.execute(
            "ALTER TABLE outbox ALTER COLUMN resource_key SET NOT NULL,"
            " DROP COLUMN resource_type, DROP COLUMN resource_id,"
            f" ALTER COLUMN order_key TYPE bigint USING {_pg_hash('order_key')}"
        )
    op.create_index(_QUEUE, "outbox", ["destination_id", "state", "order_key"])


def downgrade() -> None:
    op.drop_index(_QUEUE, "outbox")
    if _sqlite():
        _register_hash()
        _rebuild_sqlite(new=False)
    else:
        for name, size in (("resource_type", 64), ("resource_id", 64), ("order_text", 129)):
            op.add_column("outbox", sa.Column(name, sa.String(size), nullable=True))
        by_key = "r.resource_key = outbox.resource_key"
        own = "(r.resource_type || '/' || r.id)"
        op.execute(
            "UPDATE outbox SET resource_type = r.resource_type, resource_id = r.id,"
            f" order_text = CASE WHEN {_pg_hash('r.patient_key')} = outbox.order_key"
            f" THEN r.patient_key WHEN {_pg_hash(own)} = outbox.order_key THEN {own}"
            f" ELSE coalesce(r.patient_key, {own}) END FROM resource r WHERE {by_key}"
        )
        op.execute(
            "ALTER TABLE outbox ALTER COLUMN resource_type SET NOT NULL,"
            " ALTER COLUMN resource_id SET NOT NULL, ALTER COLUMN order_text SET NOT NULL,"
            " DROP COLUMN resource_key, DROP COLUMN order_key"
        )
        op.execute("ALTER TABLE outbox RENAME COLUMN order_text TO order_key")
    op.create_index(_QUEUE, "outbox", ["destination_id", "state", "order_key"])

"""Smaller inbound_message and resource rows (decision 0081):

* ``inbound_message.issues`` and ``resources`` are stored packed (adapter/store/json_pack.py:
  a zstd frame of the JSON text, or the references' compact form); PostgreSQL: the columns
  become ``bytea``; SQLite: they stay declared JSON and hold a BLOB (no table rebuilt).
* ``inbound_message.sha256`` and ``resource.content_hash`` hold the digest's 32 bytes
  instead of its 64 hex characters (read back as hex by ``types.Digest``, as
  ``audit_record.hash`` since 0029); PostgreSQL: ``bytea`` (``decode(…, 'hex')``), the
  (source_system, sha256) unique constraint kept on it.
* A message's id (``inbound_message.id`` and every column that holds one:
  ``resource``, ``resource_version`` and ``outbox.message_id``, ``audit_record.message_id``)
  holds the UUID's 16 bytes instead of its 36 characters (``types.UuidText``; any other
  text its UTF-8 bytes). PostgreSQL: the columns become ``bytea`` (``uuid_send``), the
  three foreign keys dropped and made again around it; SQLite: the columns keep their
  declared VARCHAR(36), the foreign keys checked at commit (``defer_foreign_keys``).
* SQLite: ``inbound_message.received_at``, ``processed_at`` and ``resource`` /
  ``resource_version.last_updated`` hold integer microseconds since 1970 instead of 26
  characters of text (in the rows and in their indexes; PostgreSQL's ``timestamptz`` is 8
  bytes already).

SQLite rewrites every row of the three tables, in batches of rowids (docs/operations.md:
minutes per million resources). Downgrade: every value back to its text.

Revision ID: 0033
Revises: 0032
Create Date: 2026-12-05
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from alembic import op
from sqlalchemy import Connection, text

revision: str = "0033"
down_revision: str | Sequence[str] | None = "0032"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BATCH = 5000  # rows per read
_DIGESTS = (("inbound_message", "sha256"), ("resource", "content_hash"))
_PACKED = ("issues", "resources")
# the columns that hold a message id; the first three have a foreign key to the message
_REFERRING = ("resource", "resource_version", "outbox")
_IDS = (("inbound_message", "id"), *((t, "message_id") for t in (*_REFERRING, "audit_record")))
_UUID_TEXT = "'^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _micros(value: Any) -> Any:
    """SQLite's text of a UTC instant ("2026-12-05 08:00:00.000000") as microseconds."""
    if not isinstance(value, str):
        return value
    return (datetime.fromisoformat(value).replace(tzinfo=UTC) - _EPOCH) // timedelta(microseconds=1)


def _instant_text(value: Any) -> Any:
    if not isinstance(value, int):
        return value
    moment = _EPOCH + timedelta(microseconds=value)
    return moment.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def _digest_bytes(value: Any) -> Any:
    # a value that is not a digest (a resource placeholder's "", a changed row) stays text
    if isinstance(value, str) and len(value) == 64 and value == value.lower():
        try:
            return bytes.fromhex(value)
        except ValueError:
            return value
    return value


def _digest_hex(value: Any) -> Any:
    if isinstance(value, bytes) and len(value) == 32:
        return value.hex()
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return value


def _id_bytes(value: Any) -> Any:
    from adapter.store.types import uuid_bytes

    return uuid_bytes(value) if isinstance(value, str) else value


def _id_text(value: Any) -> Any:
    from adapter.store.types import uuid_text

    return uuid_text(value)


def _to_id_bytes(column: str) -> str:
    # as types.UuidText stores it: a UUID's 16 bytes; other text (never NUL on PostgreSQL)
    # its UTF-8 bytes, after a NUL byte when they are 16
    return (
        f"CASE WHEN {column} ~ {_UUID_TEXT} THEN uuid_send({column}::uuid) "
        f"WHEN octet_length({column}) = 16 THEN '\\x00'::bytea || convert_to({column}, 'UTF8') "
        f"ELSE convert_to({column}, 'UTF8') END"
    )


def _from_id_bytes(column: str) -> str:
    return (
        f"CASE WHEN octet_length({column}) = 16 THEN encode({column}, 'hex')::uuid::text "
        f"WHEN octet_length({column}) > 0 AND get_byte({column}, 0) = 0 "
        f"THEN convert_from(substr({column}, 2), 'UTF8') "
        f"ELSE convert_from({column}, 'UTF8') END"
    )


def _foreign_key(table: str) -> str:
    return f"fk_{table}_message_id_inbound_message"


def _ids_postgresql(expression: Callable[[str], str], type_: str) -> None:
    """Every message id column to ``type_`` by ``expression``, the foreign keys dropped
    around it (a key and the id it refers to change type one at a time)."""
    for table in _REFERRING:
        op.drop_constraint(_foreign_key(table), table, type_="foreignkey")
    for table, column in _IDS:
        op.execute(
            f"ALTER TABLE {table} ALTER COLUMN {column} TYPE {type_} USING {expression(column)}"
        )
    for table in _REFERRING:
        op.create_foreign_key(
            _foreign_key(table), table, "inbound_message", ["message_id"], ["id"],
            ondelete="SET NULL",
        )  # fmt: skip


def _ids_sqlite(conn: Connection, form: Callable[[Any], Any]) -> None:
    # the message rows and the rows that refer to them change one table at a time: their
    # foreign keys are checked at commit (the pragma ends with the transaction)
    conn.exec_driver_sql("PRAGMA defer_foreign_keys = ON")
    for table, column in _IDS:
        _rewrite_sqlite(conn, table, {column: form})


def _packed(value: Any) -> Any:
    from adapter.store.json_pack import pack, unpack

    return None if value is None else pack(unpack(value))


def _json_text(value: Any) -> Any:
    """The JSON text SQLAlchemy's JSON type wrote (``json.dumps``)."""
    from adapter.store.json_pack import unpack

    return None if value is None else json.dumps(unpack(value))


def _rewrite_sqlite(conn: Connection, table: str, columns: dict[str, Callable[[Any], Any]]) -> None:
    """Each of ``columns`` of every row of ``table`` rewritten by its function, in batches
    of rowids (every table here has one)."""
    names = list(columns)
    read = text(
        f"SELECT rowid, {', '.join(names)} FROM {table} WHERE rowid > :after "
        f"ORDER BY rowid LIMIT {_BATCH}"
    )
    write = text(
        f"UPDATE {table} SET {', '.join(f'{n} = :{n}' for n in names)} WHERE rowid = :rowid_"
    )
    after = 0
    while rows := conn.execute(read, {"after": after}).all():
        conn.execute(
            write,
            [
                {
                    "rowid_": row[0],
                    **{n: columns[n](v) for n, v in zip(names, row[1:], strict=True)},
                }
                for row in rows
            ],
        )
        after = rows[-1][0]


def _rewrite_packed_postgresql(conn: Connection, form: Callable[[Any], Any]) -> None:
    """``issues`` and ``resources`` (``bytea`` by now) rewritten by ``form``, in batches of
    ids."""
    read = text(
        "SELECT id, issues, resources FROM inbound_message WHERE id > :after "
        f"ORDER BY id LIMIT {_BATCH}"
    )
    write = text("UPDATE inbound_message SET issues = :i, resources = :r WHERE id = :id")
    after = ""
    while rows := conn.execute(read, {"after": after}).all():
        conn.execute(
            write,
            [
                {"id": mid, "i": form(_bytes(issues)), "r": form(_bytes(resources))}
                for mid, issues, resources in rows
            ],
        )
        after = rows[-1][0]


def _bytes(value: Any) -> Any:
    return None if value is None else bytes(value)


def _hex(column: str) -> str:
    # a value that is not a digest (a placeholder's "", a changed row) keeps its text's bytes
    return (
        f"CASE WHEN {column} ~ '^[0-9a-f]{{64}}$' THEN decode({column}, 'hex') "
        f"ELSE convert_to({column}, 'UTF8') END"
    )


def _unhex(column: str) -> str:
    return (
        f"CASE WHEN octet_length({column}) = 32 THEN encode({column}, 'hex') "
        f"ELSE convert_from({column}, 'UTF8') END"
    )


def upgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name == "postgresql":
        for table, column in _DIGESTS:
            op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} TYPE bytea USING {_hex(column)}")
        _ids_postgresql(_to_id_bytes, "bytea")
        for column in _PACKED:
            op.execute(
                f"ALTER TABLE inbound_message ALTER COLUMN {column} TYPE bytea "
                f"USING convert_to({column}::text, 'UTF8')"
            )
        _rewrite_packed_postgresql(conn, _packed)
        return
    _ids_sqlite(conn, _id_bytes)
    _rewrite_sqlite(
        conn,
        "inbound_message",
        {
            "sha256": _digest_bytes,
            "received_at": _micros,
            "processed_at": _micros,
            "issues": _packed,
            "resources": _packed,
        },
    )
    _rewrite_sqlite(conn, "resource", {"content_hash": _digest_bytes, "last_updated": _micros})
    _rewrite_sqlite(conn, "resource_version", {"last_updated": _micros})


def downgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name == "postgresql":
        _rewrite_packed_postgresql(conn, lambda v: None if v is None else _json_text(v).encode())
        for column in _PACKED:
            op.execute(
                f"ALTER TABLE inbound_message ALTER COLUMN {column} TYPE json "
                f"USING convert_from({column}, 'UTF8')::json"
            )
        for table, column in _DIGESTS:
            op.execute(
                f"ALTER TABLE {table} ALTER COLUMN {column} TYPE varchar(64) USING {_unhex(column)}"
            )
        _ids_postgresql(_from_id_bytes, "varchar(36)")
        return
    _ids_sqlite(conn, _id_text)
    _rewrite_sqlite(
        conn,
        "inbound_message",
        {
            "sha256": _digest_hex,
            "received_at": _instant_text,
            "processed_at": _instant_text,
            "issues": _json_text,
            "resources": _json_text,
        },
    )
    _rewrite_sqlite(conn, "resource", {"content_hash": _digest_hex, "last_updated": _instant_text})
    _rewrite_sqlite(conn, "resource_version", {"last_updated": _instant_text})

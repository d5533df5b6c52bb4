"""Audit records, the patient index and care rows in fewer bytes (decision 0082):

* ``audit_record.correlation_id`` and ``request_id``: a canonical UUID is stored as its 16
  bytes (``UuidText``; read back as the same text). PostgreSQL: the columns become
  ``bytea``; SQLite: the VARCHAR columns hold a BLOB for a UUID (no table rebuilt).
* ``identity_record.features``: a zstd frame with a dictionary trained on features
  (``FeaturesJSON``, dictionary 2026120502) instead of JSON text. PostgreSQL: the column
  becomes ``bytea``.
* ``identity_key.key_hash``: the sha256's 32 bytes (``Digest``). PostgreSQL: ``bytea``;
  SQLite: the table is rebuilt ``WITHOUT ROWID`` (its key is the table: the autoindex, a
  second copy of every key, goes).
* ``audit_record.action``, ``outcome`` and ``channel``: a known value as one character (``Coded``,
  adapter/store/audit_codes.py), in one UPDATE; the receipts' partial index
  ``ix_audit_record_message_id`` made again with the receipt's code in its condition.
* SQLite: ``identity_record.created_at`` / ``updated_at`` and ``care_relationship``'s four
  instants as integer microseconds (``UTCMicros``; PostgreSQL's ``timestamptz`` is 8 bytes
  already).

Downgrade: everything back as 0030 stored it.

Revision ID: 0034
Revises: 0033
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from alembic import op
from sqlalchemy import Connection, text

revision: str = "0034"
down_revision: str | Sequence[str] | None = "0033"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BATCH = 5000
_UUID = "'^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'"
_CARE_TIMES = ("start_at", "end_at", "created_at", "updated_at")
_IDENTITY_TIMES = ("created_at", "updated_at")
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


def _rewrite(
    conn: Connection, table: str, key: str, columns: Sequence[str], form: Callable[[str, Any], Any]
) -> None:
    """Every row's ``columns`` rewritten to ``form(column, value)``, in batches by ``key``."""
    listed = ", ".join(columns)
    sets = ", ".join(f"{c} = :{c}" for c in columns)
    update = text(f"UPDATE {table} SET {sets} WHERE {key} = :_key")
    after: Any = None
    while True:
        where = "" if after is None else f"WHERE {key} > :after"
        rows = conn.execute(
            text(f"SELECT {key}, {listed} FROM {table} {where} ORDER BY {key} LIMIT {_BATCH}"),
            {"after": after},
        ).all()
        if not rows:
            return
        changes = []
        for row in rows:
            new = {c: form(c, v) for c, v in zip(columns, row[1:], strict=True)}
            if any(new[c] != v for c, v in zip(columns, row[1:], strict=True)):
                changes.append({**new, "_key": row[0]})
        if changes:
            conn.execute(update, changes)
        after = rows[-1][0]


def _features_frame(value: Any) -> Any:
    from adapter.store.body_codec import FEATURES, is_frame, pack_json

    data = value.encode() if isinstance(value, str) else bytes(value)
    # the text's exact bytes compressed (what FeaturesJSON writes: orjson's text)
    return data if is_frame(data) else pack_json(data, FEATURES)


def _features_text(value: Any) -> Any:
    from adapter.store.body_codec import json_bytes

    return json_bytes(value if isinstance(value, str) else bytes(value)).decode()


def _uuid_bytes_sqlite(_column: str, value: Any) -> Any:
    from adapter.store.types import uuid_bytes

    return uuid_bytes(value) if isinstance(value, str) else value


def _uuid_text(_column: str, value: Any) -> Any:
    from adapter.store.types import uuid_text

    return uuid_text(value)


def _to_bytes(column: str) -> str:
    """PostgreSQL: ``UuidText``'s stored form of a varchar ``column``: a UUID's 16 bytes;
    other text (never NUL on PostgreSQL) its UTF-8 bytes, after a NUL byte when they are 16."""
    raw = f"convert_to({column}, 'UTF8')"
    return (
        f"CASE WHEN {column} ~ {_UUID} THEN decode(replace({column}, '-', ''), 'hex') "
        f"WHEN octet_length({raw}) = 16 THEN '\\x00'::bytea || {raw} ELSE {raw} END"
    )


def _to_text(column: str) -> str:
    """PostgreSQL: ``UuidText``'s reading of a bytea ``column``."""
    hexed = f"encode({column}, 'hex')"
    return (
        f"CASE WHEN octet_length({column}) = 16 THEN substr({hexed}, 1, 8) || '-' || "
        f"substr({hexed}, 9, 4) || '-' || substr({hexed}, 13, 4) || '-' || "
        f"substr({hexed}, 17, 4) || '-' || substr({hexed}, 21, 12) "
        f"WHEN octet_length({column}) > 0 AND get_byte({column}, 0) = 0 "
        f"THEN convert_from(substr({column}, 2), 'UTF8') "
        f"ELSE convert_from({column}, 'UTF8') END"
    )


def _identity_key_sqlite(conn: Connection, rowid: bool, digest: Callable[[Any], Any]) -> None:
    """SQLite: identity_key copied into a new table (``WITHOUT ROWID`` or not), each key
    hash in ``digest``'s form."""
    conn.exec_driver_sql(
        "CREATE TABLE identity_key_new (key_hash VARCHAR(64) NOT NULL, "
        "patient_id VARCHAR(64) NOT NULL, "
        "CONSTRAINT pk_identity_key PRIMARY KEY (key_hash, patient_id))"
        + ("" if rowid else " WITHOUT ROWID")
    )
    insert = text("INSERT INTO identity_key_new (key_hash, patient_id) VALUES (:k, :p)")
    rows = conn.exec_driver_sql("SELECT key_hash, patient_id FROM identity_key")
    while batch := rows.fetchmany(_BATCH):
        conn.execute(insert, [{"k": digest(k), "p": p} for k, p in batch])
    conn.exec_driver_sql("DROP INDEX ix_identity_key_patient_id")
    conn.exec_driver_sql("DROP TABLE identity_key")
    conn.exec_driver_sql("ALTER TABLE identity_key_new RENAME TO identity_key")
    conn.exec_driver_sql("CREATE INDEX ix_identity_key_patient_id ON identity_key (patient_id)")


def _digest_bytes(value: Any) -> Any:
    """``Digest``'s stored form: the 32 bytes, or any other text's UTF-8 bytes (what a
    lookup binds: a TEXT would not equal it on SQLite)."""
    if not isinstance(value, str):
        return value
    if len(value) == 64 and value == value.lower():
        try:
            return bytes.fromhex(value)
        except ValueError:
            pass
    return value.encode()


def _digest_hex(value: Any) -> Any:
    if isinstance(value, bytes) and len(value) == 32:
        return value.hex()
    return value if isinstance(value, str) else bytes(value).decode(errors="replace")


def _hex(column: str) -> str:
    return (
        f"CASE WHEN {column} ~ '^[0-9a-f]{{64}}$' THEN decode({column}, 'hex') "
        f"ELSE convert_to({column}, 'UTF8') END"
    )


def _unhex(column: str) -> str:
    return (
        f"CASE WHEN octet_length({column}) = 32 THEN encode({column}, 'hex') "
        f"ELSE convert_from({column}, 'UTF8') END"
    )


def _codes(conn: Connection, *, up: bool) -> None:
    """action, outcome and channel to their one-character codes (``up``) or back to the text, in
    SQL (one pass over the table); the receipts' partial index made with the new literal."""
    from adapter.store.audit_codes import ESCAPE, VOCABULARIES, encode

    params: dict[str, str] = {"esc": ESCAPE}
    sets = []
    for column, values in VOCABULARIES.items():
        cases = []
        for n, value in enumerate(values):
            params[f"{column}_t{n}"], params[f"{column}_c{n}"] = value, encode(column, value)
            old, new = (f"t{n}", f"c{n}") if up else (f"c{n}", f"t{n}")
            cases.append(f"WHEN {column} = :{column}_{old} THEN :{column}_{new}")
        if up:  # any other text of one character, or starting with the escape: escaped
            cases.append(
                f"WHEN length({column}) <= 1 OR substr({column}, 1, 1) = :esc THEN :esc || {column}"
            )
        else:
            cases.append(f"WHEN substr({column}, 1, 1) = :esc THEN substr({column}, 2)")
        sets.append(f"{column} = CASE {' '.join(cases)} ELSE {column} END")
    op.execute("DROP INDEX ix_audit_record_message_id")
    conn.execute(text(f"UPDATE audit_record SET {', '.join(sets)}"), params)
    receipt = encode("action", "message.received") if up else "message.received"
    op.execute(
        f"CREATE INDEX ix_audit_record_message_id ON audit_record (message_id) "
        f"WHERE action = '{receipt}'"
    )


def upgrade() -> None:
    conn = op.get_bind()
    _codes(conn, up=True)
    if conn.dialect.name == "postgresql":
        for column in ("correlation_id", "request_id"):
            op.execute(
                f"ALTER TABLE audit_record ALTER COLUMN {column} TYPE bytea "
                f"USING {_to_bytes(column)}"
            )
        op.execute(
            "ALTER TABLE identity_record ALTER COLUMN features TYPE bytea "
            "USING convert_to(features, 'UTF8')"
        )
        op.execute(
            f"ALTER TABLE identity_key ALTER COLUMN key_hash TYPE bytea USING {_hex('key_hash')}"
        )
        _rewrite(
            conn, "identity_record", "patient_id", ["features"], lambda _c, v: _features_frame(v)
        )
        return
    _rewrite(conn, "audit_record", "seq", ["correlation_id", "request_id"], _uuid_bytes_sqlite)
    _rewrite(
        conn,
        "identity_record",
        "patient_id",
        ["features", *_IDENTITY_TIMES],
        lambda c, v: _features_frame(v) if c == "features" else _micros(v),
    )
    _rewrite(conn, "care_relationship", "id", _CARE_TIMES, lambda _c, v: _micros(v))
    _identity_key_sqlite(conn, rowid=False, digest=_digest_bytes)


def downgrade() -> None:
    conn = op.get_bind()
    _codes(conn, up=False)
    if conn.dialect.name == "postgresql":
        _rewrite(
            conn,
            "identity_record",
            "patient_id",
            ["features"],
            lambda _c, v: _features_text(v).encode(),
        )
        op.execute(
            "ALTER TABLE identity_record ALTER COLUMN features TYPE text "
            "USING convert_from(features, 'UTF8')"
        )
        op.execute(
            "ALTER TABLE identity_key ALTER COLUMN key_hash TYPE varchar(64) "
            f"USING {_unhex('key_hash')}"
        )
        for column in ("correlation_id", "request_id"):
            op.execute(
                f"ALTER TABLE audit_record ALTER COLUMN {column} TYPE varchar(64) "
                f"USING {_to_text(column)}"
            )
        return
    _identity_key_sqlite(conn, rowid=True, digest=_digest_hex)
    _rewrite(conn, "care_relationship", "id", _CARE_TIMES, lambda _c, v: _instant_text(v))
    _rewrite(
        conn,
        "identity_record",
        "patient_id",
        ["features", *_IDENTITY_TIMES],
        lambda c, v: _features_text(v) if c == "features" else _instant_text(v),
    )
    _rewrite(conn, "audit_record", "seq", ["correlation_id", "request_id"], _uuid_text)

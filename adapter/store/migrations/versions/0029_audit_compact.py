"""The audit log in fewer bytes (decision 0074):

* ``audit_record.prev_hash`` and ``hash`` hold the sha256 digest's 32 bytes instead of its
  64 hex characters (read back as hex by the column type: the chain is over the same text
  and every reader sees what it saw). PostgreSQL: the columns become ``bytea``
  (``decode(…, 'hex')``); SQLite: the columns stay VARCHAR and hold a BLOB (no table
  rebuilt), rewritten in batches.
* ``audit_link.reference`` is stored packed (adapter/store/audit_reference.py: 18 bytes
  and the version for a reference to one of the adapter's UUID ids, the UTF-8 text
  otherwise). PostgreSQL: the column becomes ``bytea`` (bytewise order, as its "C"
  collation was), then every row is packed in batches; SQLite: rewritten in batches.
  ``audit_link.kind`` is stored as ``p`` / ``e`` instead of ``patient`` / ``entity``
  (read back as the words), in the same pass.
* SQLite: ``audit_record.recorded`` holds the integer microseconds since 1970 instead of
  26 characters of text (in the row and in its two indexes; PostgreSQL's ``timestamptz``
  is 8 bytes already), rewritten in the pass over the hashes.

Downgrade: the hashes back to hex text, the references, kinds and SQLite's instants back
to text (PostgreSQL: the columns back to ``varchar(64)`` / ``varchar(160) COLLATE "C"``).

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from alembic import op
from sqlalchemy import Connection, text

revision: str = "0029"
down_revision: str | Sequence[str] | None = "0028"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BATCH = 5000  # records (seq values) per read


def _hex(column: str) -> str:
    # a value that is not a digest (changed in the database) is kept as its text's bytes
    return (
        f"CASE WHEN {column} ~ '^[0-9a-f]{{64}}$' THEN decode({column}, 'hex') "
        f"ELSE convert_to({column}, 'UTF8') END"
    )


def _unhex(column: str) -> str:
    return (
        f"CASE WHEN octet_length({column}) = 32 THEN encode({column}, 'hex') "
        f"ELSE convert_from({column}, 'UTF8') END"
    )


def _seq_batches(conn: Connection) -> list[tuple[int, int]]:
    top = conn.execute(text("SELECT coalesce(max(seq), 0) FROM audit_record")).scalar_one()
    low = conn.execute(text("SELECT coalesce(min(seq), 1) FROM audit_record")).scalar_one()
    return [(a, min(a + _BATCH - 1, top)) for a in range(low, top + 1, _BATCH)]


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else bytes(value).decode(errors="replace")


def _rewrite_links(
    conn: Connection, form: Callable[[str], bytes | str], kinds: dict[str, str]
) -> None:
    """Every link's reference rewritten to ``form`` of its text (read as text, or as the
    bytes ``bytea`` holds) and its kind to ``kinds`` of it, batch by batch of records
    (``ix_audit_link_seq``)."""
    from adapter.store.audit_reference import unpack

    update = text(
        "UPDATE audit_link SET reference = :new, kind = :new_kind "
        "WHERE kind = :kind AND reference = :old AND seq = :seq"
    )
    for low, high in _seq_batches(conn):
        rows = conn.execute(
            text("SELECT seq, kind, reference FROM audit_link WHERE seq BETWEEN :a AND :b"),
            {"a": low, "b": high},
        ).all()
        changes = []
        for seq, kind, stored in rows:
            reference = stored if isinstance(stored, str) else unpack(bytes(stored))
            new, new_kind = form(reference), kinds.get(kind, kind)
            if new_kind != kind or new != (stored if isinstance(stored, str) else bytes(stored)):
                changes.append(
                    {"new": new, "new_kind": new_kind, "kind": kind, "old": stored, "seq": seq}
                )
        if changes:
            conn.execute(update, changes)


def _rewrite_records_sqlite(
    conn: Connection, digest: Callable[[Any], Any], instant: Callable[[Any], Any]
) -> None:
    update = text("UPDATE audit_record SET prev_hash = :p, hash = :h, recorded = :r WHERE seq = :s")
    for low, high in _seq_batches(conn):
        rows = conn.execute(
            text(
                "SELECT seq, prev_hash, hash, recorded FROM audit_record "
                "WHERE seq BETWEEN :a AND :b"
            ),
            {"a": low, "b": high},
        ).all()
        if rows:
            conn.execute(
                update,
                [{"s": s, "p": digest(p), "h": digest(h), "r": instant(r)} for s, p, h, r in rows],
            )


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
    if isinstance(value, str) and len(value) == 64 and value == value.lower():
        try:
            return bytes.fromhex(value)
        except ValueError:
            return value
    return value


def _digest_hex(value: Any) -> Any:
    if isinstance(value, bytes) and len(value) == 32:
        return value.hex()
    return _as_text(value) if value is not None else None


def upgrade() -> None:
    from adapter.store.audit_reference import KINDS, pack

    conn = op.get_bind()
    if conn.dialect.name == "postgresql":
        for column in ("prev_hash", "hash"):
            op.execute(
                f"ALTER TABLE audit_record ALTER COLUMN {column} TYPE bytea USING {_hex(column)}"
            )
        op.execute(
            "ALTER TABLE audit_link ALTER COLUMN reference TYPE bytea "
            "USING convert_to(reference, 'UTF8')"
        )
    else:
        _rewrite_records_sqlite(conn, _digest_bytes, _micros)
    _rewrite_links(conn, pack, KINDS)


def downgrade() -> None:
    from adapter.store.audit_reference import KINDS

    conn = op.get_bind()
    postgresql = conn.dialect.name == "postgresql"
    # as bytea holds text until the column's type changes back; as text on SQLite
    _rewrite_links(conn, str.encode if postgresql else str, {s: k for k, s in KINDS.items()})
    if postgresql:
        for column in ("prev_hash", "hash"):
            op.execute(
                f"ALTER TABLE audit_record ALTER COLUMN {column} TYPE varchar(64) "
                f"USING {_unhex(column)}"
            )
        op.execute(
            'ALTER TABLE audit_link ALTER COLUMN reference TYPE varchar(160) COLLATE "C" '
            "USING convert_from(reference, 'UTF8')"
        )
    else:
        _rewrite_records_sqlite(conn, _digest_hex, _instant_text)

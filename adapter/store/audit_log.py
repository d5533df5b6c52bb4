"""The audit log's tables: append-only records, their search links, signed checkpoints.

audit_record      one row per audited fact, in ``seq`` order, each carrying the hash chain
                  (``prev_hash`` -> ``hash``) over its canonical ``body`` (adapter/audit/chain.py)
audit_link        the patients and resources a record names, for searching by them
                  (derived from ``body``; ``adapter audit verify`` checks they agree)
audit_checkpoint  a signed statement "the log had ``seq`` records ending in ``hash``"

Only adapter.audit writes here. The columns beside ``body`` are copies for indexing:
``body`` is what the chain protects, and verify checks every copy against it. ``body`` is
stored as a zstd frame with the audit dictionary and read back as the exact canonical text
(``CompressedText``, decision 0072).

Indexes (decision 0072, each kept for a query that uses it): ``recorded`` (date search,
purge), ``(action, recorded)`` (subtype / type / action search), ``correlation_id``
(correlation-id search), ``message_id`` of receipts only (the writer's correlation
lookup, the only query by message). audit_link's key is ``(kind, reference, seq)``
(patient and entity search, disclosures; on SQLite the table itself, ``WITHOUT ROWID``) and
``seq`` has an index of its own (verify, archive, purge); its ``reference`` is ordered
bytewise on both databases.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, PrimaryKeyConstraint, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from adapter.store.audit_codes import Coded, encode
from adapter.store.audit_reference import LinkKind, PackedReference
from adapter.store.models import Base
from adapter.store.types import CompressedText, Digest, UTCDateTime, UTCMicros, UuidText

RECEIPT = "message.received"
# the partial index's condition, spelled the same in the queries that use it (SQLite uses
# a partial index only for a query whose WHERE has the same term, a literal, not a "?"):
# the receipt's stored code (adapter/store/audit_codes.py)
IS_RECEIPT = text(f"action = '{encode('action', RECEIPT)}'")


class AuditRecord(Base):
    __tablename__ = "audit_record"
    __table_args__ = (
        Index(None, "recorded"),
        Index(None, "correlation_id"),
        Index(None, "message_id", sqlite_where=IS_RECEIPT, postgresql_where=IS_RECEIPT),
        Index(None, "action", "recorded"),
    )

    # assigned by the writer under the chain lock: gapless, in commit order
    seq: Mapped[int] = mapped_column(BigInteger(), primary_key=True, autoincrement=False)
    recorded: Mapped[datetime] = mapped_column(UTCMicros())  # SQLite: an integer (0074)
    # one character for a known value, read as the text (decision 0082)
    action: Mapped[str] = mapped_column(Coded(40, "action"))
    outcome: Mapped[str] = mapped_column(Coded(16, "outcome"))
    actor: Mapped[str] = mapped_column(String(160))  # "source:<id>", "worker:<id>", "anonymous"
    client: Mapped[str | None] = mapped_column(String(160))  # the authenticated client, later
    facility: Mapped[str | None] = mapped_column(String(64))
    address: Mapped[str | None] = mapped_column(String(255))  # peer host:port, file, URL
    # http, mllp, file-drop, cli ...: one character for a known one (decision 0082)
    channel: Mapped[str | None] = mapped_column(Coded(16, "channel"))
    # a UUID as its 16 bytes (decisions 0081, 0082)
    correlation_id: Mapped[str | None] = mapped_column(UuidText(64))
    request_id: Mapped[str | None] = mapped_column(UuidText(64))
    message_id: Mapped[str | None] = mapped_column(UuidText())
    body: Mapped[str] = mapped_column(CompressedText())  # canonical JSON: what the chain protects
    # sha256 hex to every reader, 32 bytes stored (decision 0074)
    prev_hash: Mapped[str] = mapped_column(Digest())
    hash: Mapped[str] = mapped_column(Digest())


class AuditLink(Base):
    """A patient (``kind = 'patient'``) or resource (``'entity'``) a record names."""

    __tablename__ = "audit_link"
    __table_args__ = (
        PrimaryKeyConstraint("kind", "reference", "seq"),
        Index(None, "seq"),
        {"sqlite_with_rowid": False},
    )

    seq: Mapped[int] = mapped_column(
        BigInteger(), ForeignKey("audit_record.seq"), primary_key=True, autoincrement=False
    )
    kind: Mapped[str] = mapped_column(LinkKind(), primary_key=True)  # stored "p" / "e"
    # stored packed (18 bytes and the version for the adapter's UUID ids), read as text;
    # bytes on both databases, so in bytewise order: the search for every version of an
    # entity is a range of the key (adapter/audit/search.py, decision 0074)
    reference: Mapped[str] = mapped_column(PackedReference(), primary_key=True)


class AuditCheckpoint(Base):
    """The log's size and head hash at one moment, signed with the adapter's audit key."""

    __tablename__ = "audit_checkpoint"

    seq: Mapped[int] = mapped_column(BigInteger(), primary_key=True, autoincrement=False)
    hash: Mapped[str] = mapped_column(String(64))
    made_at: Mapped[datetime] = mapped_column(UTCDateTime())
    key_id: Mapped[str] = mapped_column(String(64))  # sha256 of the public key, 16 hex
    signature: Mapped[str] = mapped_column(Text())  # base64 Ed25519 over the statement
    statement: Mapped[str] = mapped_column(Text())  # the exact signed text

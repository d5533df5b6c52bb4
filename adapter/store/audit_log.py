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
lookup, the only query by message). On SQLite audit_link's key is ``(kind, reference,
seq)`` (patient and entity search, disclosures; the table itself, ``WITHOUT ROWID``); on
PostgreSQL (migration 0040, decision 0092) a hash index of each link's entity (its reference
without the version, ``entity_of``) serves those searches instead, at half the b-tree's
size: the searches name the entity too (``entity_is``). ``seq`` has an index of its own
(verify, archive, purge); ``reference`` is ordered bytewise on both databases.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    LargeBinary,
    PrimaryKeyConstraint,
    String,
    Text,
    bindparam,
    literal_column,
    text,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.visitors import InternalTraversal

from adapter.store.audit_codes import Coded, encode
from adapter.store.audit_reference import ENTITY_SQL, LinkKind, PackedReference, entity_of, pack
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
        # SQLite: the table, in key order (WITHOUT ROWID). PostgreSQL: no key since
        # migration 0040 (its b-tree, 0.6 KB per lab message, as large as the table: the
        # references are random bytes and 9.6 a message); the hash index below finds a
        # search's links, and the writer never writes a link twice (a record's are a set)
        PrimaryKeyConstraint("kind", "reference", "seq", name="pk_audit_link").ddl_if(
            dialect="sqlite"
        ),
        Index(None, "seq"),
        Index(
            "ix_audit_link_entity",
            text(f"({ENTITY_SQL.format(col='reference')})"),
            postgresql_using="hash",
        ).ddl_if(dialect="postgresql"),
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


class _OnPostgreSQL(ColumnElement[bool]):
    """A condition PostgreSQL is given and SQLite is not (there it is ``1 = 1``)."""

    inherit_cache = True
    type = Boolean()
    _traverse_internals = [("clause", InternalTraversal.dp_clauseelement)]  # noqa: RUF012

    def __init__(self, clause: ColumnElement[bool]) -> None:
        self.clause = clause


@compiles(_OnPostgreSQL)
def _elsewhere(element: _OnPostgreSQL, compiler: Any, **kw: Any) -> str:
    return "1 = 1"


@compiles(_OnPostgreSQL, "postgresql")
def _on_postgresql(element: _OnPostgreSQL, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.clause, **kw))


_ENTITY = literal_column(f"({ENTITY_SQL.format(col='audit_link.reference')})", type_=LargeBinary())


def entity_is(*references: str) -> ColumnElement[bool]:
    """A condition every audit_link row naming one of ``references`` (exactly, or as a
    version of it) meets, for PostgreSQL's hash index of entities (``ix_audit_link_entity``,
    decision 0092); the search's own condition on ``reference`` decides. SQLite: none."""
    entities = sorted({entity_of(pack(r)) for r in references})
    values = bindparam(None, entities, type_=LargeBinary(), expanding=True)
    return _OnPostgreSQL(_ENTITY.in_(values))

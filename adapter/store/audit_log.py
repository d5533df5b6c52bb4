"""The audit log's tables: append-only records, their search links, signed checkpoints.

audit_record      one row per audited fact, in ``seq`` order, each carrying the hash chain
                  (``prev_hash`` -> ``hash``) over its canonical ``body`` (adapter/audit/chain.py)
audit_link        SQLite: the patients and resources a record names, for searching by
                  them (derived from ``body``; ``adapter audit verify`` checks they agree);
                  PostgreSQL keeps them as ``audit_record.links`` instead (migration 0048)
audit_checkpoint  a signed statement "the log had ``seq`` records ending in ``hash``"

Only adapter.audit writes here. The columns beside ``body`` are copies for indexing:
``body`` is what the chain protects, and verify checks every copy against it. ``body`` is
stored as a zstd frame with the audit dictionary and read back as the exact canonical text
(``CompressedText``, decision 0072).

Indexes (decision 0072, each kept for a query that uses it): ``recorded`` (date search,
purge), ``(action, recorded)`` (subtype / type / action search), ``correlation_id``
(correlation-id search), ``message_id`` of receipts only (the writer's correlation
lookup, the only query by message). On SQLite audit_link's key is ``(kind, reference,
seq)`` (patient and entity search, disclosures; the table itself, ``WITHOUT ROWID``) and
``seq`` has an index of its own (verify, archive, purge). On PostgreSQL (migration 0048,
decision 0119) a record's links are one value on its row, ``audit_record.links``, under a GIN
index of its entities' 8-byte hashes: 0.47 KB less per lab message than the 9.6 rows of
audit_link and their two indexes (decisions 0092, 0115). ``linked`` writes a search's
condition for either form. References are ordered bytewise on both databases.
"""

from __future__ import annotations

from collections.abc import Sequence
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
    and_,
    bindparam,
    exists,
    func,
    literal,
    or_,
    select,
    text,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Mapped, Session, mapped_column
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.visitors import InternalTraversal

from adapter.store.audit_codes import Coded, encode
from adapter.store.audit_reference import (
    KINDS,
    LINK_HASHES_SQL,
    LinkKind,
    PackedReference,
    entity_hash,
    link_element,
    link_of,
    unpack_links,
    versions,
)
from adapter.store.models import Base
from adapter.store.types import CompressedText, Digest, UTCDateTime, UTCMicros, UuidText

RECEIPT = "message.received"
# the partial index's condition, spelled the same in the queries that use it (SQLite uses
# a partial index only for a query whose WHERE has the same term, a literal, not a "?"):
# the receipt's stored code (adapter/store/audit_codes.py)
IS_RECEIPT = text(f"action = '{encode('action', RECEIPT)}'")


_BYTES = postgresql.ARRAY(LargeBinary())
_HASHES = postgresql.ARRAY(BigInteger())


class AuditRecord(Base):
    __tablename__ = "audit_record"
    __table_args__ = (
        Index(None, "recorded"),
        Index(None, "correlation_id"),
        Index(None, "message_id", sqlite_where=IS_RECEIPT, postgresql_where=IS_RECEIPT),
        Index(None, "action", "recorded"),
        # the links' entities (migration 0048). ``fastupdate = off``: every probe would read
        # GIN's pending list too (decision 0088's dated section)
        Index(
            "ix_audit_record_links",
            text(f"{LINK_HASHES_SQL}(links)"),
            postgresql_using="gin",
            postgresql_with={"fastupdate": "off"},
        ).ddl_if(dialect="postgresql"),
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
    # PostgreSQL: the record's links (``pack_links`` of their ``link_element``s, sorted);
    # NULL when it has none, and always on SQLite (there they are audit_link rows). Copies
    # of ``body``'s like the columns above: not in the chain, checked by verify. Deferred:
    # only verify and archive read them (``stored_links``), never a search's page
    links: Mapped[bytes | None] = mapped_column(LargeBinary(), deferred=True)


class AuditLink(Base):
    """A patient (``kind = 'patient'``) or resource (``'entity'``) a record names."""

    __tablename__ = "audit_link"
    __table_args__ = (
        # the table, in key order (WITHOUT ROWID). SQLite only since migration 0048
        # (``info``: the schema comparison expects it there alone); PostgreSQL keeps a
        # record's links as ``audit_record.links``
        PrimaryKeyConstraint("kind", "reference", "seq", name="pk_audit_link"),
        Index(None, "seq"),
        {"sqlite_with_rowid": False, "info": {"dialect": "sqlite"}},
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


class _ByDialect(ColumnElement[bool]):
    """One condition on SQLite (audit_link rows), another on PostgreSQL (``links``)."""

    inherit_cache = True
    type = Boolean()
    _is_implicitly_boolean = True  # no "= 1" after it on SQLite (the IN must stay an IN)
    _traverse_internals = [  # noqa: RUF012
        ("sqlite", InternalTraversal.dp_clauseelement),
        ("postgresql", InternalTraversal.dp_clauseelement),
    ]

    def __init__(self, sqlite: ColumnElement[bool], postgresql: ColumnElement[bool]) -> None:
        self.sqlite = sqlite
        self.postgresql = postgresql


@compiles(_ByDialect)
def _on_sqlite(element: _ByDialect, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.sqlite, **kw))


@compiles(_ByDialect, "postgresql")
def _on_postgresql(element: _ByDialect, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.postgresql, **kw))


def linked(kind: str, references: Sequence[str], *, every_version: bool = False) -> Any:
    """The audit records that name one of ``references`` as a link of ``kind``: exactly, or
    with ``every_version`` (references without ``/_history/``) the reference itself and
    each of its versions. The versions of a stored form lie in one bytewise range
    (``versions``, decision 0074). SQLite reads audit_link's key; PostgreSQL probes the GIN
    index of the links' entity hashes (``entity_hash``: of the reference and of its
    versions' entity, the same but for a text reference ending in ``/_history``), then
    keeps the records whose ``links`` hold a match."""
    code = KINDS.get(kind, kind).encode()
    if every_version:
        ranges = [versions(r) for r in references]
        rows = or_(*(_in_range(AuditLink.reference, *bounds) for bounds in ranges))
        element = func.unnest(_elements).column_valued("link")
        held: ColumnElement[bool] = exists(
            select(literal(1)).where(
                or_(*(_in_range(element, *(_kind(code, b) for b in r)) for r in ranges))
            )
        )
        hashed = {entity_hash(kind, r) for r in references}
        hashed |= {entity_hash(kind, f"{r}/_history/1") for r in references}
    else:
        rows = AuditLink.reference.in_(list(references))
        stored = [link_element(kind, r) for r in references]
        held = _elements.bool_op("&&")(bindparam(None, stored, type_=_BYTES))
        hashed = {entity_hash(kind, r) for r in references}
    probe = func.audit_link_hashes(AuditRecord.links, type_=_HASHES).bool_op("&&")(
        bindparam(None, sorted(hashed), type_=_HASHES)
    )
    return _ByDialect(
        AuditRecord.seq.in_(select(AuditLink.seq).where(AuditLink.kind == kind, rows)),
        and_(probe, held),
    )


_elements = func.audit_link_elements(AuditRecord.links, type_=_BYTES)


def _kind(code: bytes, stored: bytes | None) -> bytes | None:
    return None if stored is None else code + stored


def _in_range(column: Any, low: bytes, high: bytes, versioned: bytes | None) -> Any:
    """``column`` is ``low`` or one of its versions (``versions``' three bounds)."""
    match = and_(column >= low, column < high)
    if versioned is not None:
        match = and_(match, or_(column == low, column >= versioned))
    return match


def stored_links(
    session: Session, records: Sequence[AuditRecord]
) -> dict[int, set[tuple[str, str]]]:
    """The ``(kind, reference)`` links stored for ``records`` (a run of consecutive seqs),
    by seq: from their ``links`` on PostgreSQL, from audit_link's rows on SQLite (verify
    compares them with ``links_of(body)``; an archive holds them)."""
    if not records:
        return {}
    found: dict[int, set[tuple[str, str]]] = {}
    if session.get_bind().dialect.name == "postgresql":
        for seq, elements in session.execute(
            select(AuditRecord.seq, AuditRecord.links).where(
                AuditRecord.seq.between(records[0].seq, records[-1].seq),
                AuditRecord.links.is_not(None),
            )
        ):
            found[seq] = {link_of(e) for e in unpack_links(bytes(elements))}
        return found
    for seq, kind, reference in session.execute(
        select(AuditLink.seq, AuditLink.kind, AuditLink.reference).where(
            AuditLink.seq.between(records[0].seq, records[-1].seq)
        )
    ):
        found.setdefault(seq, set()).add((kind, reference))
    return found

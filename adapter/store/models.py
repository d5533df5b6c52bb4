"""Tables of the adapter (singular names). Schema changes go through alembic migrations.

inbound_message   every input exactly as received, and what became of it
resource          the current version of each FHIR resource
resource_version  every version (history, vread), the current one included; the current
                  version's body is only in ``resource`` (body NULL here until superseded)
search_index      one row per searchable value of a current resource
search_system     each code system of the index's rows once, named there by its integer
search_param      each (resource type, parameter, kind) of the index's rows once, likewise
outbox            one row per resource version and destination still to deliver
outbox_destination  each destination of outbox rows once, by a small integer
delivery_attempt  every try to deliver an outbox row: when, by whom, status, error, duration
delivery_destination  per destination: circuit breaker state and last success (shared by workers)
care_relationship  which facility cares for which consortium person, since when, until when, why
recognition_decision  a doctor's 互认 decision per (patient, order, item), also stored as a Task
recognition_reminder  a $recognisable answer shown (POST) per (patient, order or encounter, item)
referral_ledger   the 转诊台账: one row per referral Task, kept in step with the Task
referral_overdue  the overdue worklist: one row per referral Task and deadline breached
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Identity,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Sequence,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    select,
    text,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import DeclarativeBase, Mapped, column_property, mapped_column

from adapter.store.id_forms import IndexId, PatientKey
from adapter.store.types import (
    BigId,
    Digest,
    IndexTime,
    JSONText,
    NamedCode,
    PackedBytes,
    PackedJSON,
    ResourceBody,
    ShortDigest,
    UTCDateTime,
    UTCMicros,
    UuidText,
)

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

MESSAGE_STATUSES = ("received", "processed", "processed-with-warnings", "quarantined")


class OutboxState(StrEnum):
    """Where an outbox row stands. pending -> in-flight (claimed, under a lease) ->
    delivered | pending again (retry) | dead (refused or out of tries); a replay puts a
    dead or delivered row back to pending."""

    PENDING = "pending"
    IN_FLIGHT = "in-flight"
    DELIVERED = "delivered"
    DEAD = "dead"


OUTBOX_STATES = tuple(state.value for state in OutboxState)
# ``outbox.state`` as a small integer (decision 0079); read and bound as the names above
# (``OutboxStateCode``), so the partial indexes' predicates and every query compare constants
OUTBOX_STATE_CODES: dict[str, int] = {"pending": 1, "in-flight": 2, "delivered": 3, "dead": 4}

_TYPE = 64  # FHIR resource type names are short
_ID = 64  # FHIR ids are at most 64 characters
_WORKER = 128  # "host:pid:n"


# ``search_index.kind`` and ``search_param.kind``: the parameter type as a small integer
# (decision 0071); the partial indexes' predicates compare it with a constant
KINDS: dict[str, int] = {
    "token": 1, "string": 2, "date": 3, "reference": 4, "quantity": 5, "uri": 6,
}  # fmt: skip
KIND_NAMES: dict[int, str] = {number: name for name, number in KINDS.items()}


def kind_where(kind: str, where: str | None = None) -> Any:
    """The predicate of a partial index of ``kind`` (and ``where``)."""
    return text(f"kind = {KINDS[kind]}" + (f" AND {where}" if where else ""))


def _kind_index(
    kind: str, *columns: str, name: str | None = None, where: str | None = None, **kw: Any
) -> Index:
    predicate = kind_where(kind, where)
    return Index(
        name or f"ix_search_index_{kind}",
        "param_id",
        *columns,
        "resource_key",
        postgresql_where=predicate,
        sqlite_where=predicate,
        **kw,
    )


def _message_keys(table: str) -> tuple[ForeignKeyConstraint, ForeignKeyConstraint]:
    """The foreign key of ``table.message_id`` to the inbound message (its type: UuidText,
    decision 0081). PostgreSQL: ``DEFERRABLE INITIALLY IMMEDIATE`` (migration 0038): a bulk
    batch defers it to its commit and writes each message's row once, after its resources
    (``resources.batch_writes``, decision 0089). SQLite: as before."""
    name = f"fk_{table}_message_id_inbound_message"
    made = {"ondelete": "SET NULL", "name": name}
    return (
        ForeignKeyConstraint(
            ["message_id"], ["inbound_message.id"], deferrable=True, initially="IMMEDIATE", **made
        ).ddl_if(dialect="postgresql"),
        ForeignKeyConstraint(["message_id"], ["inbound_message.id"], **made).ddl_if(
            dialect="sqlite"
        ),
    )


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class InboundMessage(Base):
    __tablename__ = "inbound_message"
    __table_args__ = (
        UniqueConstraint("source_system", "sha256"),
        Index(None, "status", "received_at"),
        Index(None, "received_at"),
    )

    # uuid4 text, stored as its 16 bytes (UuidText, decision 0081); so are the columns that
    # refer to it (their foreign keys take its type)
    id: Mapped[str] = mapped_column(UuidText(), primary_key=True)
    source_system: Mapped[str] = mapped_column(String(_ID))
    facility_id: Mapped[str | None] = mapped_column(String(_ID))
    # integer microseconds on SQLite (decision 0081), as are processed_at and the resource
    # and history rows' last_updated
    received_at: Mapped[datetime] = mapped_column(UTCMicros())
    content_type: Mapped[str | None] = mapped_column(String(255))
    detected_format: Mapped[str | None] = mapped_column(String(32))
    encoding: Mapped[str | None] = mapped_column(String(32))
    # how it came in (adapter/pipeline/receipt.py): http, mllp, file-drop, fhir-pull, cli;
    # the peer address, file name or URL (no credentials); None for rows older than 0004
    channel: Mapped[str | None] = mapped_column(String(16))
    peer: Mapped[str | None] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(Digest())  # hex in and out, 32 bytes stored (0081)
    # the exact bytes (stored compressed when smaller: PackedBytes, decision 0065);
    # deferred so listings do not load them
    raw: Mapped[bytes] = mapped_column(PackedBytes(), deferred=True)
    size: Mapped[int] = mapped_column(Integer())
    status: Mapped[str] = mapped_column(String(32), default="received")
    # stored packed (PackedJSON, decision 0081)
    issues: Mapped[list[dict[str, Any]]] = mapped_column(PackedJSON(), default=list)
    resources: Mapped[list[str]] = mapped_column(PackedJSON(), default=list)  # "Type/id"
    processed_at: Mapped[datetime | None] = mapped_column(UTCMicros())
    attempts: Mapped[int] = mapped_column(Integer(), default=0)  # times processed


class Resource(Base):
    __tablename__ = "resource"
    __table_args__ = (
        # a type's resources in last-change order (``_sort=_lastUpdated``, a search's default
        # order, history, ``_since``). PostgreSQL: without ``id`` (migration 0038, decision
        # 0089): the order's id term, ascending where ``last_updated`` is descending, is an
        # incremental sort of each instant's few rows either way, and the entry half as wide
        Index(None, "resource_type", "last_updated", "id").ddl_if(dialect="sqlite"),
        Index(None, "resource_type", "last_updated").ddl_if(dialect="postgresql"),
        Index(None, "patient_key"),
        Index(None, "message_id"),
        Index(None, "resource_key", unique=True),
        # PostgreSQL: the resources marked deleted, none in a store that never deletes (an
        # empty index, nothing written for a live row): a search asks it before it takes
        # its total from the arrays it counted (migration 0053, decision 0127)
        Index("ix_resource_deleted", "resource_type", postgresql_where=text("deleted")).ddl_if(
            dialect="postgresql"
        ),
        *_message_keys("resource"),
    )

    resource_type: Mapped[str] = mapped_column(String(_TYPE), primary_key=True)
    id: Mapped[str] = mapped_column(String(_ID), primary_key=True)
    # the resource's integer in search_index (decision 0055): given by the store
    # (adapter/store/resource_keys.py); on PostgreSQL the sequence's next value by default
    resource_key: Mapped[int] = mapped_column(BigId, Sequence("resource_key_seq"), nullable=False)
    version_id: Mapped[int] = mapped_column(Integer())
    last_updated: Mapped[datetime] = mapped_column(UTCMicros())
    deleted: Mapped[bool] = mapped_column(Boolean(), default=False)
    # the first 128 bits of the sha256 of the canonical body without meta.versionId/
    # lastUpdated: "did it change?" (32 hex characters in and out, 16 bytes stored:
    # decision 0092; rows written before keep their 32 bytes and read as their first 16)
    content_hash: Mapped[str] = mapped_column(ShortDigest())
    body: Mapped[dict[str, Any]] = mapped_column(ResourceBody())  # decisions 0049, 0128
    message_id: Mapped[str | None] = mapped_column(UuidText())  # key: _message_keys
    # "Patient/<id>"; PostgreSQL: the bare id in 16 bytes, as the index ids (decision 0123)
    patient_key: Mapped[str | None] = mapped_column(PatientKey(_TYPE + 1 + _ID))
    # the facility whose message made it, as its ``facility_name`` row (decision 0118: 2
    # bytes instead of the name's ~25); by name: adapter/store/facilities.py
    facility_key: Mapped[int | None] = mapped_column(SmallInteger())


class ResourceVersion(Base):
    __tablename__ = "resource_version"
    __table_args__ = (
        ForeignKeyConstraint(
            ["resource_type", "id"],
            ["resource.resource_type", "resource.id"],
            ondelete="CASCADE",
        ),
        # type-level and system-level history, newest first
        Index(None, "resource_type", "last_updated"),
        Index(None, "last_updated"),
        *_message_keys("resource_version"),
    )

    resource_type: Mapped[str] = mapped_column(String(_TYPE), primary_key=True)
    id: Mapped[str] = mapped_column(String(_ID), primary_key=True)
    version_id: Mapped[int] = mapped_column(Integer(), primary_key=True)
    last_updated: Mapped[datetime] = mapped_column(UTCMicros())
    deleted: Mapped[bool] = mapped_column(Boolean(), default=False)
    # NULL while this is the current version: its body is the resource row's (written once;
    # copied here when a newer version supersedes it, migration 0016, decision 0042)
    body: Mapped[dict[str, Any] | None] = mapped_column(
        ResourceBody(strip=False), nullable=True
    )  # copied from resource rows by SQL: stripped ones too (decision 0128)
    message_id: Mapped[str | None] = mapped_column(UuidText(), index=True)  # _message_keys


FK_INDEX_RESOURCE = "fk_search_index_resource_key_resource"


class SearchIndex(Base):
    """Searchable values; which columns are set depends on ``kind`` (the parameter type).

    token: system_id + code; uri: code; string: value + value_norm; date:
    value_date_start/end (half-open UTC range); quantity: value_number + system_id + code;
    reference: target_key (a resource of the store, decision 0080) or reference (text).
    ``system_id`` is the system's row in ``search_system`` (decision
    0059). ``code``, ``value_norm`` and ``reference`` hold bounded keys; a longer value
    is kept whole in ``<column>_full`` (adapter/store/index_keys.py).
    The resource is ``resource_key``, its ``resource.resource_key`` (decision 0055); the
    resource type, parameter and kind are ``param_id``, a row of ``search_param`` (decision
    0071: one small integer instead of two strings in every row and index entry), and the
    first column of every per-kind index. ``kind`` (``KINDS``) is repeated in the row: the
    per-kind indexes are partial (``WHERE kind = n``) and searches name it as a constant.
    Every index ends with resource_key so EXISTS probes are index-only on PostgreSQL.
    The columns are in an order that leaves no alignment padding on PostgreSQL: the 8-byte
    values first, then the 4- and 2-byte ones, then the texts.
    """

    __tablename__ = "search_index"
    __table_args__ = (
        # the ORM's identity. On SQLite the table's key: the table is WITHOUT ROWID (below),
        # its b-tree in resource order, so a resource's rows are found and deleted through
        # it, with no index of their own, and a probe of one resource's rows of a kind
        # (``:not``, ``:missing``, a sort's rivals) reads a range of it (decision 0085,
        # migration 0036). ``kind`` in the key is also in every per-kind index's entries,
        # which then answer a search without reading the table. On PostgreSQL no
        # constraint: its b-tree (2.3 KB per lab message) served no query (decision 0067,
        # migration 0024); ``ix_search_index_resource`` finds a resource's rows there
        PrimaryKeyConstraint("resource_key", "kind", "row_id", name="pk_search_index").ddl_if(
            dialect="sqlite"
        ),
        # SQLite only since migration 0021 (decision 0060): on PostgreSQL the rows are
        # written with their resource through the store's one door and resource rows are
        # never deleted, and the constraint's check was the night's largest flat server cost
        ForeignKeyConstraint(
            ["resource_key"], ["resource.resource_key"], ondelete="CASCADE", name=FK_INDEX_RESOURCE
        ).ddl_if(dialect="sqlite"),
        # partial indexes: a row only enters the index of its kind, which keeps writes cheap
        _kind_index("token", "code", "system_id"),
        _kind_index("uri", "code"),
        _kind_index("string", "value_norm", postgresql_ops={"value_norm": "text_pattern_ops"}),
        _kind_index("date", "value_date_start", "value_date_end"),
        # ``_sort=-date``: the latest date end first, read in index order (migration 0011)
        _kind_index("date", "value_date_end", name="ix_search_index_date_end"),
        _kind_index("quantity", "value_number"),
        # a reference the store could name by its target's key has ``target_key`` and no
        # text (decision 0080): each of the two indexes holds only the rows with its column
        _kind_index("reference", "reference", where="reference IS NOT NULL"),
        # SQLite only since migration 0037: PostgreSQL keeps these values as arrays in
        # ``search_terms`` under GIN (adapter/store/search_terms.py, decision 0088)
        _kind_index(
            "reference", "target_key", name="ix_search_index_target", where="target_key IS NOT NULL"
        ).ddl_if(dialect="sqlite"),
        Index("ix_search_index_resource", "resource_key").ddl_if(dialect="postgresql"),
        # SQLite: the rows are stored in the key's order, (resource_key, kind, row_id),
        # without the rowid b-tree; the per-kind indexes, which end with resource_key, then
        # carry kind and row_id of the key, two small numbers (decision 0085)
        {"sqlite_with_rowid": False},
    )

    # a sort's tie-break between two rows of one resource: the row's number among its
    # resource's rows, given by the store (0, 1, ... in the order written;
    # adapter/store/resources.py; SQLite since decision 0085, PostgreSQL since decision
    # 0098). PostgreSQL: ``smallint``, stored right after ``kind`` (2 + 2 bytes, no padding)
    # where a ``bigint`` from a sequence led the row (8 bytes and a nextval per row;
    # migration 0042 sets that column order: no store is made from this model's). Declared
    # first here: the INSERT's column order (adapter/store/fast_insert.py) is this one.
    # SQLite: an integer of the table's key
    row_id: Mapped[int] = mapped_column(
        SmallInteger().with_variant(Integer(), "sqlite"), autoincrement=False
    )  # key: __table_args__
    resource_key: Mapped[int] = mapped_column(BigId)
    # integer microseconds on SQLite (decision 0073, migration 0028)
    value_date_start: Mapped[datetime | None] = mapped_column(IndexTime())
    value_date_end: Mapped[datetime | None] = mapped_column(IndexTime())
    value_number: Mapped[float | None] = mapped_column(Float())
    # a reference to a resource of this store: its ``resource.resource_key`` (decision 0080);
    # ``reference`` is then NULL. A reference the write could not name so keeps the text
    target_key: Mapped[int | None] = mapped_column(BigInteger())
    param_id: Mapped[int] = mapped_column(Integer())  # search_param (decision 0071)
    system_id: Mapped[int | None] = mapped_column(Integer())  # search_system (decision 0059)
    kind: Mapped[int] = mapped_column(SmallInteger())  # KINDS
    code: Mapped[str | None] = mapped_column(Text())
    value: Mapped[str | None] = mapped_column(Text())
    value_norm: Mapped[str | None] = mapped_column(Text())
    reference: Mapped[str | None] = mapped_column(Text())
    # the whole value where the key column above holds only a bounded part of it
    code_full: Mapped[str | None] = mapped_column(Text())
    value_norm_full: Mapped[str | None] = mapped_column(Text())
    reference_full: Mapped[str | None] = mapped_column(Text())


# PostgreSQL only (migration 0037, decision 0088): a resource's references that name a
# stored resource, each ``param_id << 40 | target_key`` (adapter/store/search_terms.py),
# under GIN. SQLite keeps them as search_index rows. ``info["dialect"]``: the schema
# comparison expects it on that database alone (tests/integration/test_store_schema.py).
# ``fastupdate = off``: with GIN's pending list every probe also reads the whole list, up to
# 4 MB until a vacuum or the limit merges it (2.4 ms a probe in a night's run where a b-tree
# probe took 0.02; a referral lookup probing once per candidate Task then took seconds);
# each insert goes into the tree at once instead (decision 0088, dated section)
SEARCH_TERMS = Table(
    "search_terms",
    Base.metadata,
    Column("resource_key", BigInteger(), primary_key=True, autoincrement=False),
    Column("refs", postgresql.ARRAY(BigInteger()), nullable=False, server_default="{}"),
    # the resource's token values that can move, as ids of ``search_token`` (sorted,
    # distinct; migration 0043, decision 0103, adapter/store/search_tokens.py)
    Column("toks", postgresql.ARRAY(Integer()), nullable=False, server_default="{}"),
    Index(
        "ix_search_terms_refs",
        "refs",
        postgresql_using="gin",
        postgresql_with={"fastupdate": "off"},
    ),
    Index(
        "ix_search_terms_toks",
        "toks",
        postgresql_using="gin",
        postgresql_with={"fastupdate": "off"},
    ),
    info={"dialect": "postgresql"},
)

# PostgreSQL only (migration 0043, decision 0103): the dictionary of token values kept in
# ``search_terms.toks``: one row per (parameter, code, system, display); a string value
# (decision 0114) is a row of ``system_id`` -1: ``value_norm``, ``code`` its text as
# written or '' when the same. No NULLs, so that
# the unique key and the interning's ``IN`` lookups see every value: ``system_id`` 0 is
# "no system", ``value_norm`` '' "no display" (adapter/store/search_tokens.py). Code before
# system in the key: a search by code alone reads one range
SEARCH_TOKEN = Table(
    "search_token",
    Base.metadata,
    Column("token_id", Integer(), Identity(), primary_key=True),
    Column("param_id", Integer(), nullable=False),
    Column("system_id", Integer(), nullable=False),
    Column("code", Text(), nullable=False),
    Column("value_norm", Text(), nullable=False),
    UniqueConstraint("param_id", "code", "system_id", "value_norm", name="uq_search_token"),
    # string values (``system_id`` -1, migration 0044, decision 0114): a string search's
    # prefix (``LIKE 'x%'``) and exact lookups of the dictionary
    Index(
        "ix_search_token_string",
        "param_id",
        "value_norm",
        postgresql_ops={"value_norm": "text_pattern_ops"},
        postgresql_where=text("system_id = -1"),
    ),
    info={"dialect": "postgresql"},
)


class SearchSystem(Base):
    """The code systems of ``search_index`` rows, each once (decision 0059,
    adapter/store/systems.py). Rows are only added, never changed or deleted; the lookup
    is by the SHA-256 of the system (a URI may be longer than a b-tree entry allows)."""

    __tablename__ = "search_system"

    system_id: Mapped[int] = mapped_column(Integer(), primary_key=True, autoincrement=True)
    system: Mapped[str] = mapped_column(Text())
    system_hash: Mapped[str] = mapped_column(String(64), unique=True)


class SearchParam(Base):
    """The (resource type, parameter row name, kind) of ``search_index`` rows, each once
    (decision 0071, adapter/store/params.py): a few dozen in a lab feed. Rows are only
    added, never changed or deleted."""

    __tablename__ = "search_param"
    __table_args__ = (UniqueConstraint("resource_type", "param", "kind"),)

    param_id: Mapped[int] = mapped_column(Integer(), primary_key=True, autoincrement=True)
    resource_type: Mapped[str] = mapped_column(String(_TYPE))
    param: Mapped[str] = mapped_column(String(64))
    kind: Mapped[int] = mapped_column(SmallInteger())  # KINDS


# A row's type and parameter by name, read through search_param: for ad-hoc reads of rows
# (``select(SearchIndex).where(SearchIndex.param == ...)``, tests, the shell); the store's
# own queries compare ``param_id`` (adapter/store/index_params.py)
SearchIndex.resource_type = column_property(
    select(SearchParam.resource_type)
    .where(SearchParam.param_id == SearchIndex.param_id)
    .scalar_subquery()
)
SearchIndex.param = column_property(
    select(SearchParam.param).where(SearchParam.param_id == SearchIndex.param_id).scalar_subquery()
)


class Outbox(Base):
    """A resource version waiting for (or done with) delivery to one destination.

    ``resource_key`` is the resource's ``resource.resource_key`` (its type, id and patient
    are read through it: decision 0084). ``order_key`` stands for the patient
    (``Patient/<id>``) or, for resources about no patient, the resource itself, as 8 bytes
    of the SHA-256 of that text (``outbox.enqueue.order_hash``): rows of one destination
    and order key are delivered in ``id`` order. Two texts with one hash only share a
    queue (delivered in id order together), which loses and reorders nothing.
    A worker owns an ``in-flight`` row until ``claimed_until`` (its lease); after that any
    worker may take it again, so a killed worker loses nothing.
    """

    __tablename__ = "outbox"
    __table_args__ = (
        CheckConstraint(
            "state IN (" + ", ".join(str(n) for n in OUTBOX_STATE_CODES.values()) + ")",
            name="state",
        ),
        # decision 0070: what each query uses (bench/outbox_plans.py). (state,
        # next_attempt_at): the prune, a retry's due time, listings by state; (destination,
        # state, order_key): the claim's heads and queues, coalescing (a resource's rows
        # share its order key), per-destination counts and replays. No id column: SQLite
        # keeps the rowid (= id) in every index entry anyway, and without it PostgreSQL
        # stores a patient's rows as one deduplicated entry
        Index(None, "state", "next_attempt_at"),
        Index(None, "destination_id", "state", "order_key"),
        # gap-free numbering per destination: unique among the rows given a number; partial
        # (decision 0075), so the rows still to send (every row at ingest) have no entry
        Index(
            "uq_outbox_destination_sequence",
            "destination_id",
            "sequence",
            unique=True,
            sqlite_where=text("sequence IS NOT NULL"),
            postgresql_where=text("sequence IS NOT NULL"),
        ),
        *_message_keys("outbox"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    # the destination's row in ``outbox_destination`` (decision 0079: its name read through
    # it, ``Outbox.destination`` below and ``adapter/store/outbox/names.py``)
    destination_id: Mapped[int] = mapped_column(Integer())
    # the resource (``resource.resource_key``, which never changes; decision 0084)
    resource_key: Mapped[int] = mapped_column(BigInteger())
    version_id: Mapped[int] = mapped_column(Integer())
    # the patient's queue (or the resource's own), hashed to a signed 64-bit integer
    order_key: Mapped[int] = mapped_column(BigInteger())
    state: Mapped[str] = mapped_column(
        NamedCode(OUTBOX_STATE_CODES), default=OutboxState.PENDING.value
    )
    attempts: Mapped[int] = mapped_column(Integer(), default=0)
    # the instants: integer microseconds on SQLite (decision 0079, migration 0031)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCMicros())
    created_at: Mapped[datetime] = mapped_column(UTCMicros())
    last_error: Mapped[str | None] = mapped_column(Text())
    message_id: Mapped[str | None] = mapped_column(UuidText(), index=True)  # _message_keys
    claimed_by: Mapped[str | None] = mapped_column(String(_WORKER))
    claimed_until: Mapped[datetime | None] = mapped_column(UTCMicros())
    first_attempt_at: Mapped[datetime | None] = mapped_column(UTCMicros())
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCMicros())
    delivered_at: Mapped[datetime | None] = mapped_column(UTCMicros())
    last_status: Mapped[str | None] = mapped_column(String(32))  # HTTP status or ACK code
    sent_version_id: Mapped[int | None] = mapped_column(Integer())  # what was delivered
    # why the destination gets it (a static route, or which care relationship); routed by
    # care, the person and the facility whose care it was (checked again before sending)
    reason: Mapped[str | None] = mapped_column(Text())
    person_id: Mapped[str | None] = mapped_column(String(_ID))
    care_facility: Mapped[str | None] = mapped_column(String(_ID))
    # the destination's sequence number, given when the row is first sent (a receiver sees
    # 1, 2, 3 ... without a gap; a resend carries the same number)
    sequence: Mapped[int | None] = mapped_column(BigInteger())


class FacilityName(Base):
    """Each facility named by ``resource.facility_key`` once, by a small integer (decision
    0118, adapter/store/facilities.py; interned as ``outbox_destination``). Rows are only
    added."""

    __tablename__ = "facility_name"

    facility_key: Mapped[int] = mapped_column(Integer(), primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(_ID), unique=True)


# a resource's facility by name, read through facility_name, for ad-hoc ORM reads (tests,
# the shell); deferred: loaded only when read. The store's queries use
# adapter/store/facilities.py
Resource.facility_id = column_property(
    select(FacilityName.name)
    .where(FacilityName.facility_key == Resource.facility_key)
    .scalar_subquery(),
    deferred=True,
)


class OutboxDestination(Base):
    """Each destination of ``outbox`` rows once, named by a small integer (decision 0079,
    adapter/store/outbox/names.py; as ``search_system``). Rows are only added."""

    __tablename__ = "outbox_destination"

    destination_id: Mapped[int] = mapped_column(Integer(), primary_key=True, autoincrement=True)
    destination: Mapped[str] = mapped_column(String(_ID), unique=True)


# a row's destination by name, read through outbox_destination: for ad-hoc reads of rows
# (``select(Outbox).where(Outbox.destination == ...)``, tests, the shell); the outbox's own
# queries compare ``destination_id`` (adapter/store/outbox/names.py). A query of it alone
# needs ``.select_from(Outbox)``: without the outbox in the query's FROM the subquery takes
# its own (and answers one name for every row)
Outbox.destination = column_property(
    select(OutboxDestination.destination)
    .where(OutboxDestination.destination_id == Outbox.destination_id)
    .scalar_subquery()
)
# the resource's type and id, read through ``resource`` the same way (decision 0084)
Outbox.resource_type = column_property(
    select(Resource.resource_type)
    .where(Resource.resource_key == Outbox.resource_key)
    .scalar_subquery()
)
Outbox.resource_id = column_property(
    select(Resource.id).where(Resource.resource_key == Outbox.resource_key).scalar_subquery()
)


class DeliveryAttempt(Base):
    """One try to deliver an outbox row (also the rows a coalesced send settled)."""

    __tablename__ = "delivery_attempt"
    __table_args__ = (
        CheckConstraint("outcome IN ('delivered', 'retry', 'dead')", name="outcome"),
        Index(None, "destination", "attempted_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    outbox_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("outbox.id", ondelete="CASCADE"), index=True
    )
    destination: Mapped[str] = mapped_column(String(_ID))
    attempted_at: Mapped[datetime] = mapped_column(UTCDateTime())
    version_id: Mapped[int | None] = mapped_column(Integer())  # the version sent
    outcome: Mapped[str] = mapped_column(String(16))
    status: Mapped[str | None] = mapped_column(String(32))
    error: Mapped[str | None] = mapped_column(Text())
    # the destination's OperationOutcome of a refused item, kept for the operator
    operation_outcome: Mapped[dict[str, Any] | None] = mapped_column(JSONText())
    duration_ms: Mapped[float] = mapped_column(Float(), default=0.0)
    worker: Mapped[str | None] = mapped_column(String(_WORKER))


class DeliveryDestination(Base):
    """Per destination, shared by every worker: the circuit breaker and the last success."""

    __tablename__ = "delivery_destination"
    __table_args__ = (
        CheckConstraint("breaker_state IN ('closed', 'open', 'half-open')", name="breaker_state"),
    )

    destination: Mapped[str] = mapped_column(String(_ID), primary_key=True)
    breaker_state: Mapped[str] = mapped_column(String(16), default="closed")
    consecutive_failures: Mapped[int] = mapped_column(Integer(), default=0)
    opened_count: Mapped[int] = mapped_column(Integer(), default=0)  # opens since last close
    open_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    probe_by: Mapped[str | None] = mapped_column(String(_WORKER))
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_failure_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # running totals for /metrics (counting delivery_attempt rows would grow with history)
    attempts_total: Mapped[int] = mapped_column(BigInteger(), default=0)
    delivered_total: Mapped[int] = mapped_column(BigInteger(), default=0)
    retried_total: Mapped[int] = mapped_column(BigInteger(), default=0)
    dead_total: Mapped[int] = mapped_column(BigInteger(), default=0)
    last_sequence: Mapped[int] = mapped_column(BigInteger(), default=0)  # the last one given
    # paused by an operator (the console): nothing is sent while set (migration 0014)
    paused_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    paused_by: Mapped[str | None] = mapped_column(String(128))
    # delivered outbox rows deleted by the retention prune so far (migration 0022)
    pruned_total: Mapped[int] = mapped_column(BigInteger(), default=0, server_default="0")


class DeliveredMessage(Base):
    """A message whose delivered outbox rows to one destination were pruned (decision
    0064): what the nightly reconciliation still reads as acknowledged once the rows are
    gone. One short row per message and destination instead of ~13 outbox rows and their
    attempts; SQLite keeps it without a rowid (the key is the row)."""

    __tablename__ = "delivered_message"
    __table_args__ = ({"sqlite_with_rowid": False},)

    message_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    destination: Mapped[str] = mapped_column(String(_ID), primary_key=True)


CARE_SOURCES = ("activity", "referral", "registered", "grant", "revocation")


class CareRelationship(Base):
    """A facility caring for a consortium person, from ``start_at`` until ``end_at`` (open
    when empty), and why (``source``, ``ref``): activity (it sent or ordered something for
    the person; one row per person and facility, extended by each new item), referral (a
    party of a referral, ``ref`` the ServiceRequest), registered (the primary facility),
    grant (the API, with ``actor`` and ``note``); a revocation (the API) withholds the
    person from the facility whatever else says so while it lasts."""

    __tablename__ = "care_relationship"
    __table_args__ = (
        CheckConstraint(
            "source IN (" + ", ".join(f"'{s}'" for s in CARE_SOURCES) + ")", name="source"
        ),
        UniqueConstraint("person_id", "facility_id", "source", "ref", name="uq_care_key"),
        Index("ix_care_relationship_facility", "facility_id", "person_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    person_id: Mapped[str] = mapped_column(IndexId(_ID))  # 16 bytes on PostgreSQL (0123)
    facility_id: Mapped[str] = mapped_column(String(_ID))
    source: Mapped[str] = mapped_column(String(16))
    ref: Mapped[str] = mapped_column(String(_TYPE + 1 + _ID), default="")
    # SQLite: integer microseconds, 8 bytes instead of 26 characters (decision 0082)
    start_at: Mapped[datetime] = mapped_column(UTCMicros())
    end_at: Mapped[datetime | None] = mapped_column(UTCMicros())
    actor: Mapped[str | None] = mapped_column(String(128))
    note: Mapped[str | None] = mapped_column(Text())
    detail: Mapped[str | None] = mapped_column(Text())  # e.g. the last item that extended it
    created_at: Mapped[datetime] = mapped_column(UTCMicros())
    updated_at: Mapped[datetime] = mapped_column(UTCMicros())


# -- nightly synchronisation (adapter/sync, docs/sync.md) -----------------------------------------
class SyncRun(Base):
    """One ``adapter sync`` run: its window per source (fixed at the start, so a resumed
    run reads what the interrupted one would have), its checkpoints and its report."""

    __tablename__ = "sync_run"
    __table_args__ = (Index(None, "state", "started_at"), Index(None, "day"))

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    day: Mapped[str] = mapped_column(String(10))  # the business day, YYYY-MM-DD
    sources: Mapped[list[str]] = mapped_column(JSON(), default=list)
    state: Mapped[str] = mapped_column(String(16), default="running")  # running|done|failed
    replay: Mapped[bool] = mapped_column(Boolean(), default=False)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    windows: Mapped[dict[str, Any]] = mapped_column(JSONText(), default=dict)
    checkpoints: Mapped[dict[str, Any]] = mapped_column(JSONText(), default=dict)
    attempts: Mapped[int] = mapped_column(Integer(), default=1)  # starts, resumes included
    exit_code: Mapped[int | None] = mapped_column(Integer())
    report: Mapped[dict[str, Any] | None] = mapped_column(JSONText())


class SyncItem(Base):
    """What the adapter received of one business key of one sync source: the ledger the
    reconciliation reads (source list vs this vs the outbox)."""

    __tablename__ = "sync_item"
    __table_args__ = (Index(None, "sync_source", "day"), Index(None, "message_id"))

    sync_source: Mapped[str] = mapped_column(String(_ID), primary_key=True)
    item_key: Mapped[str] = mapped_column(String(255), primary_key=True)
    facility_id: Mapped[str] = mapped_column(String(_ID))
    document_kind: Mapped[str] = mapped_column(String(64))
    day: Mapped[str] = mapped_column(String(10))
    op: Mapped[str] = mapped_column(String(16))  # new | corrected | deleted
    sha256: Mapped[str | None] = mapped_column(String(64))
    message_id: Mapped[str | None] = mapped_column(String(36))
    status: Mapped[str | None] = mapped_column(String(32))  # the message's status
    versions: Mapped[int] = mapped_column(Integer(), default=1)  # different bytes seen
    replayed: Mapped[bool] = mapped_column(Boolean(), default=False)
    run_id: Mapped[str] = mapped_column(String(36))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SyncBookmark(Base):
    """Per sync source: the watermark the next run starts from (minus the overlap)."""

    __tablename__ = "sync_bookmark"

    sync_source: Mapped[str] = mapped_column(String(_ID), primary_key=True)
    watermark: Mapped[str] = mapped_column(Text())
    run_id: Mapped[str] = mapped_column(String(36))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SyncLease(Base):
    """Who runs the scheduled sync now, until when (one process among several)."""

    __tablename__ = "sync_lease"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(_WORKER))
    until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_run_day: Mapped[str | None] = mapped_column(String(10))


class RecognitionDecision(Base):
    """A doctor's decision on one item of an order (检查检验结果互认): recognise a prior
    result, or not, with a coded reason; one row per (patient, order, item), kept as a FHIR
    Task too (``task_id``). ``edition`` is the recognition catalogue's edition used."""

    __tablename__ = "recognition_decision"
    __table_args__ = (
        UniqueConstraint("patient_id", "order_id", "item_code"),
        CheckConstraint("decision IN ('recognised', 'not-recognised')", name="decision"),
        Index(None, "facility_id", "decided_at"),
        Index(None, "item_code", "decided_at"),
    )

    task_id: Mapped[str] = mapped_column(String(_ID), primary_key=True)
    patient_id: Mapped[str] = mapped_column(String(_ID))
    order_id: Mapped[str] = mapped_column(String(255))  # the new order: HIS number or reference
    item_code: Mapped[str] = mapped_column(String(_ID))
    facility_id: Mapped[str] = mapped_column(String(_ID))  # the ordering facility
    department: Mapped[str | None] = mapped_column(String(255))
    doctor: Mapped[str] = mapped_column(String(255))
    decision: Mapped[str] = mapped_column(String(16))
    reason_code: Mapped[str | None] = mapped_column(String(_ID))
    reason_text: Mapped[str | None] = mapped_column(Text())
    prior: Mapped[str | None] = mapped_column(String(_TYPE + 1 + _ID))  # "Observation/<id>"
    edition: Mapped[str] = mapped_column(String(_ID))
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime())
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())


class RecognitionReminder(Base):
    """An answer of ``$recognisable`` shown to a doctor (POST, with the order or encounter it
    was shown for): one row per (patient, context, item, trigger), the first showing kept.
    ``recognisable``: a recognisable prior result was shown (the item was eligible)."""

    __tablename__ = "recognition_reminder"
    __table_args__ = (
        UniqueConstraint("patient_id", "context", "item_code", "trigger"),
        CheckConstraint("trigger IN ('encounter', 'order')", name="trigger"),
        Index(None, "facility_id", "shown_at"),
        Index(None, "shown_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    patient_id: Mapped[str] = mapped_column(String(_ID))
    context: Mapped[str] = mapped_column(String(255))  # the order or encounter number
    item_code: Mapped[str] = mapped_column(String(_ID))
    trigger: Mapped[str] = mapped_column(String(16))
    facility_id: Mapped[str] = mapped_column(String(_ID))
    doctor: Mapped[str | None] = mapped_column(String(255))
    recognisable: Mapped[bool] = mapped_column(Boolean())
    edition: Mapped[str] = mapped_column(String(_ID))
    shown_at: Mapped[datetime] = mapped_column(UTCDateTime())
    department: Mapped[str | None] = mapped_column(String(255), nullable=True)
    # 已查阅: when a doctor first opened a prior result the reminder showed, and which
    viewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    viewed_result: Mapped[str | None] = mapped_column(String(_TYPE + 1 + _ID), nullable=True)


class ReferralLedger(Base):
    """The 转诊台账 (docs/ledger.md): one row per referral Task (a referral sent to two
    receivers has two rows), kept in step with the Task and its ServiceRequest by
    adapter/referral/ledger.py. The times are the first time the Task reached each step.
    ``next_due_at`` / ``next_due_kind``: the next deadline not yet on the worklist (the
    scheduler's index). The patient is stored masked only."""

    __tablename__ = "referral_ledger"
    __table_args__ = (
        Index(None, "created_at"),
        Index(None, "sender_facility", "created_at"),
        Index(None, "receiver_facility", "created_at"),
        Index(None, "next_due_at"),
        Index(None, "request_id"),
        Index(None, "patient_id"),  # the follow-up of every Encounter (migration 0020)
    )

    task_id: Mapped[str] = mapped_column(String(_ID), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(_ID))
    slip_number: Mapped[str | None] = mapped_column(String(255))
    direction: Mapped[str] = mapped_column(String(8))  # up, down, same
    emergency: Mapped[bool] = mapped_column(Boolean(), default=False)
    green_channel: Mapped[bool] = mapped_column(Boolean(), default=False)
    backfilled: Mapped[bool] = mapped_column(Boolean(), default=False)  # 补录 (late slip)
    patient_id: Mapped[str | None] = mapped_column(String(_ID))
    patient_masked: Mapped[str | None] = mapped_column(String(64))
    sex: Mapped[str | None] = mapped_column(String(16))
    age: Mapped[int | None] = mapped_column(Integer())
    insurance: Mapped[str | None] = mapped_column(String(64))
    diagnosis_code: Mapped[str | None] = mapped_column(String(32))
    diagnosis_text: Mapped[str | None] = mapped_column(String(255))
    reason: Mapped[str | None] = mapped_column(Text())
    sender_facility: Mapped[str | None] = mapped_column(String(_ID))
    sender_department: Mapped[str | None] = mapped_column(String(255))
    sender_doctor: Mapped[str | None] = mapped_column(String(255))
    receiver_facility: Mapped[str | None] = mapped_column(String(_ID))
    receiver_department: Mapped[str | None] = mapped_column(String(255))
    receiver_doctor: Mapped[str | None] = mapped_column(String(255))
    out_of_county: Mapped[bool] = mapped_column(Boolean(), default=False)
    status: Mapped[str] = mapped_column(String(32))
    business_status: Mapped[str | None] = mapped_column(String(32))
    rejection_reason: Mapped[str | None] = mapped_column(String(_ID))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    received_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    rejected_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    arrived_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    admitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    discharged_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    feedback_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    followed_up_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    follow_ups: Mapped[int] = mapped_column(Integer(), default=0)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    feedback_document: Mapped[str | None] = mapped_column(String(_TYPE + 1 + _ID))
    follow_up_record: Mapped[str | None] = mapped_column(String(_TYPE + 1 + _ID))
    missing: Mapped[list[str]] = mapped_column(JSON(), default=list)  # incomplete slip
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    next_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    next_due_kind: Mapped[str | None] = mapped_column(String(32))


class ReferralOverdue(Base):
    """The overdue worklist (docs/referral-loop.md): one row per referral Task and deadline
    breached, for the responsible facility and department; ``resolved_at`` once the step
    is done (late)."""

    __tablename__ = "referral_overdue"
    __table_args__ = (
        UniqueConstraint("task_id", "kind"),
        Index(None, "facility_id", "resolved_at"),
        Index(None, "due_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    task_id: Mapped[str] = mapped_column(String(_ID))
    kind: Mapped[str] = mapped_column(String(32))
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    noticed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    facility_id: Mapped[str | None] = mapped_column(String(_ID))  # the party that must act
    department: Mapped[str | None] = mapped_column(String(255))
    other_facility: Mapped[str | None] = mapped_column(String(_ID))
    notice: Mapped[str | None] = mapped_column(String(_TYPE + 1 + _ID))  # Communication/<id>
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

"""Reading and writing the index rows (identity_record, identity_key, identity_history):
small helpers the resolver, the review queue and merges share. No commits."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    CompoundSelect,
    Integer,
    Row,
    Select,
    any_,
    bindparam,
    cast,
    column,
    delete,
    func,
    null,
    or_,
    select,
    text,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import TextClause

from adapter.identity.index.locks import note_stored_keys
from adapter.store import care
from adapter.store.bound import bind_of
from adapter.store.driver_select import execute_rows
from adapter.store.fast_insert import insert_rows
from adapter.store.identity_tables import (
    IdentityBlock,
    IdentityHistory,
    IdentityKey,
    IdentityRecord,
)
from adapter.store.resources import held_writes

PIPELINE = "pipeline"
_key = IdentityKey.__table__
_record = IdentityRecord.__table__
_block = IdentityBlock.__table__
_history = IdentityHistory.__table__


def own_person_id(patient_id: str) -> str:
    """The person a record starts as (before anything links it): deterministic, so that
    reprocessing the same messages gives the same ids."""
    # the form of adapter.mapping.ids.deterministic_id (not imported: mapping sits above)
    key = "\x1f".join(["Patient", "consortium-person", patient_id])
    return str(uuid.UUID(bytes=hashlib.sha256(key.encode("utf-8")).digest()[:16], version=5))


def ordered(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a <= b else (b, a)


def record(session: Session, patient_id: str) -> IdentityRecord | None:
    return session.get(IdentityRecord, patient_id)


def records_of_person(session: Session, person_id: str) -> list[IdentityRecord]:
    return list(
        session.scalars(
            select(IdentityRecord)
            .where(IdentityRecord.person_id == person_id)
            .order_by(IdentityRecord.created_at, IdentityRecord.patient_id)
        )
    )


def stored_hashes(session: Session, patient_ids: Iterable[str]) -> list[str]:
    ids = list(patient_ids)
    if not ids:
        return []
    return list(
        session.scalars(select(IdentityKey.key_hash).where(IdentityKey.patient_id.in_(ids)))
    )


@dataclass(slots=True)
class Near:
    """A record as the resolver reads it (``near``): its row, the key hashes it has
    stored, and the records sharing a key with it, each with the key it shares and whether
    the pair is blocked. Rows are Core rows of identity_record (attributes by column name),
    not ORM objects: the resolver writes the record with Core statements too (decision
    0050, amended)."""

    existing: Row[Any] | None = None
    stored_keys: set[str] = field(default_factory=set)
    others: list[tuple[Row[Any], str, bool]] = field(default_factory=list)
    # records sharing a key that were not read: the most a key left out beyond its limit
    # (an oversized block, decision 0056)
    omitted: int = 0
    largest: int = 0  # the most records one key is shared with (counted up to counted + 1)
    counted: int = 0  # ``largest`` above this: "more than counted"

    def absorb(self, more: Near) -> None:
        """Add the records another ``near`` read (the stored record's own keys) and what
        its keys left out."""
        self.others += more.others
        self.omitted = max(self.omitted, more.omitted)
        self.largest = max(self.largest, more.largest)
        self.counted = max(self.counted, more.counted)

    def candidates(self, hashes: Collection[str]) -> list[tuple[Row[Any], bool]]:
        """The records sharing one of ``hashes`` (each once), oldest link first, as
        ``candidates`` orders them, with whether the pair is blocked."""
        found: dict[str, tuple[Row[Any], bool]] = {}
        for other, hashed, blocked in self.others:
            if hashed in hashes:
                found[other.patient_id] = (other, blocked)
        return sorted(found.values(), key=lambda o: (o[0].created_at, o[0].patient_id))


# ``near``'s statements, built once (ids as parameters) and run on the session's connection
# as Core statements: building an ORM statement and its cache key afresh cost about as
# much as running it (decision 0050), and loading ORM objects (the identity map, the unit
# of work's snapshot) about as much again (0050, amended)
_OWN = (
    select(_record, _key.c.key_hash)
    .select_from(_record.outerjoin(_key, _key.c.patient_id == _record.c.patient_id))
    .where(_record.c.patient_id == bindparam("patient_id"))
)
# An oversized block (decision 0056): a key shared by thousands of records (look-alikes
# without an ID) answers, per key, at most ``limit`` records: the most recently indexed
# among the ``limit * PROBE`` with the greatest ids (every one while the block is no larger),
# with how many share the key (counted up to one more than that). Each step reads a bounded
# range of the key's index: ranking all of a block by identity_record.created_at would read
# every record of it, per message (no index holds the key with the time), and counting all
# of it grows with it too.
PROBE = 10


def _one_key(n: int) -> Select[Any]:
    hashed, patient_id = bindparam(f"h{n}"), bindparam("patient_id")
    sample = (
        select(_key.c.patient_id, _key.c.key_hash)
        .where(_key.c.key_hash == hashed, _key.c.patient_id != patient_id)
        .order_by(_key.c.patient_id.desc())
        .limit(bindparam("probe"))
        .subquery()
    )
    within = (
        select(_key.c.patient_id)
        .where(_key.c.key_hash == hashed, _key.c.patient_id != patient_id)
        .limit(bindparam("counted"))
        .subquery()
    )
    shared = select(func.count()).select_from(within).scalar_subquery()
    # ranked on two narrow columns, then the chosen records read whole
    recent = (
        select(sample.c.patient_id, sample.c.key_hash)
        .join_from(sample, _record, _record.c.patient_id == sample.c.patient_id)
        .order_by(_record.c.created_at.desc(), _record.c.patient_id.desc())
        .limit(bindparam("limit"))
        .subquery()
    )
    return select(_record, recent.c.key_hash, shared.label("shared")).join_from(
        recent, _record, _record.c.patient_id == recent.c.patient_id
    )


@lru_cache(maxsize=16)
def _shared(keys: int) -> Select[Any] | CompoundSelect:
    """The records sharing one of ``keys`` key hashes (parameters h0, h1, ...), bounded per
    key."""
    parts = [_one_key(n) for n in range(keys)]
    if keys == 1:
        return parts[0]
    return union_all(*(select(part.subquery()) for part in parts))


@lru_cache(maxsize=16)
def _own_and_shared(keys: int) -> CompoundSelect:
    """``_OWN`` and ``_shared(keys)`` in one statement (decision 0077): the record's own rows
    (``shared`` NULL) UNION ALL the records sharing a key, which never include the record
    itself (``patient_id != :patient_id``): one round trip fewer per Patient. Each branch
    keeps its own index-led plan."""
    own = select(_OWN.subquery())
    own = select(*own.selected_columns, cast(null(), Integer).label("shared"))
    parts = [_one_key(n) for n in range(keys)]
    return union_all(own, *(select(part.subquery()) for part in parts))


_BLOCKED = select(_block.c.patient_id, _block.c.other_id).where(
    (_block.c.patient_id == bindparam("patient_id"))
    | (_block.c.other_id == bindparam("patient_id"))
)


def near(
    session: Session, patient_id: str, hashes: Collection[str], *, limit: int, own: bool = True
) -> Near:
    """The record ``patient_id`` with its stored keys (``own``), and the records sharing one
    of ``hashes`` with whether each pair is blocked: per key at most ``limit``, the most
    recently indexed (``Near.omitted``: how many a key left out).

    Two plain statements, each branch led by an index (the record by its key, UNION ALL the
    shared keys' bounded SELECTs, one per key: decision 0077; then the blocked pairs, when
    a key is shared): one statement joining them (a UNION with a per-row EXISTS on the
    blocked pairs) was planned badly on PostgreSQL once a block held many records in one
    long transaction (the population test ran for over 15 minutes).
    No autoflush: the resolver writes the index with Core statements as it goes (the
    caller flushes pending ORM objects first: ``index_patients``)."""
    early = _prefetched_answer(session, patient_id, hashes, limit=limit, own=own)
    if early is not None:
        return early
    cache = _batch_cache(session)
    if cache is not None:
        key = (patient_id, frozenset(hashes), own, limit)
        found = cache.get(key)
        if found is None:
            found = cache[key] = _near(session, patient_id, hashes, limit=limit, own=own)
        # a copy: the resolver extends ``others``
        return replace(found, stored_keys=set(found.stored_keys), others=list(found.others))
    return _near(session, patient_id, hashes, limit=limit, own=own)


def _near(
    session: Session, patient_id: str, hashes: Collection[str], *, limit: int, own: bool
) -> Near:
    out = Near()
    # the session's connection, no autoflush (as before 0106); SQLite: on the driver
    if not hashes:
        if own:
            _own_rows(out, execute_rows(session, _OWN, {"patient_id": patient_id}, flush=False))
        return out
    ordered = sorted(hashes)
    params: dict[str, Any] = {f"h{n}": h for n, h in enumerate(ordered)}
    params.update(patient_id=patient_id, limit=limit, probe=limit * PROBE)
    params["counted"] = limit * PROBE + 1
    if own:  # the record's own rows in the same statement: told by their id
        found = execute_rows(session, _own_and_shared(len(ordered)), params, flush=False)
        _own_rows(out, [r for r in found if r.patient_id == patient_id])
        shared = [r for r in found if r.patient_id != patient_id]
    else:
        shared = execute_rows(session, _shared(len(ordered)), params, flush=False)
    if not shared:
        return out
    out.largest = max(r.shared for r in shared)
    out.omitted = max(0, out.largest - limit)
    out.counted = limit * PROBE
    blocked = {
        b if a == patient_id else a
        for a, b in execute_rows(session, _BLOCKED, {"patient_id": patient_id}, flush=False)
    }
    for found in shared:
        out.others.append((found, found.key_hash, found.patient_id in blocked))
    return out


def _own_rows(out: Near, found: Iterable[Row[Any]]) -> None:
    """The record's row (one per stored key) into ``out``."""
    for row in found:
        out.existing = row
        if row.key_hash is not None:
            out.stored_keys.add(row.key_hash)


_CACHE = "adapter.identity.near"  # session.info: the batch's answers of ``near``


def _batch_cache(session: Session) -> dict[tuple[str, frozenset[str], bool, int], Near] | None:
    """In a bulk batch on SQLite, the answers ``near`` gave since the index last changed:
    a repeat patient's message reads nothing the batch already read. Only there: the
    batch holds SQLite's write lock from BEGIN IMMEDIATE to its commit, so only its own
    writes change the index; each of them empties the cache (``forget_near``), and so does a
    message rolled back to its savepoint (``BatchWrites.rollback`` empties ``reads``).
    On PostgreSQL another transaction may commit a block or a record between two
    messages: every message reads."""
    writes = held_writes(session)
    if writes is None or bind_of(session).dialect.name != "sqlite":
        return None
    return writes.reads.setdefault(_CACHE, {})


def forget_near(
    session: Session, *, hashes: Iterable[str] | None = None, records: Iterable[str] = ()
) -> None:
    """The index changed in this transaction: forget the batch's answers of ``near``. With
    ``hashes`` (the keys a record wrote or dropped) and ``records`` (those written), the
    answers ``prefetch_near`` read are forgotten only where these writes change them;
    without, all of them (a block, a merge: anything else)."""
    writes = held_writes(session)
    if writes is None:
        return
    writes.reads.pop(_CACHE, None)
    care.forget(session)  # a person's ids may change: its care rows read by id (0148)
    early = writes.reads.get(_PREFETCH)
    if early is None:
        return
    if hashes is None:
        del writes.reads[_PREFETCH]
        return
    early.hashes.update(hashes)
    early.records.update(records)


# ``prefetch_near``: the records sharing a key with each of a batch's records, for all of
# them in one statement (PostgreSQL): ``_one_key`` once per (record, key) pair of the arrays
_SHARED_BATCH = """
SELECT r.*, q.asked, s.key_hash, s.shared
FROM unnest(:asked, :hashed) AS q(asked, hashed)
CROSS JOIN LATERAL (
    SELECT sample.patient_id, sample.key_hash, (
        SELECT count(*) FROM (
            SELECT k.patient_id FROM identity_key k
            WHERE k.key_hash = q.hashed AND k.patient_id != q.asked LIMIT :counted
        ) AS within
    ) AS shared
    FROM (
        SELECT k.patient_id, k.key_hash FROM identity_key k
        WHERE k.key_hash = q.hashed AND k.patient_id != q.asked
        ORDER BY k.patient_id DESC LIMIT :probe
    ) AS sample
    JOIN identity_record r2 ON r2.patient_id = sample.patient_id
    ORDER BY r2.created_at DESC, r2.patient_id DESC LIMIT :limit
) AS s
JOIN identity_record r ON r.patient_id = s.patient_id
"""


@lru_cache(maxsize=1)
def _batch_statements() -> tuple[Any, Any, Any]:
    """``prefetch_near``'s three statements (built once): the records' own rows, the
    records sharing their keys (typed as ``_near``'s rows are), the blocked pairs."""
    ids = ARRAY(_record.c.patient_id.type)
    own = (
        select(_record, _key.c.key_hash)
        .select_from(_record.outerjoin(_key, _key.c.patient_id == _record.c.patient_id))
        .where(_record.c.patient_id == any_(bindparam("ids", type_=ids)))
    )
    shared = (
        text(_SHARED_BATCH)
        .bindparams(
            bindparam("asked", type_=ids),
            bindparam("hashed", type_=ARRAY(_key.c.key_hash.type)),
        )
        .columns(
            *_record.c,
            column("asked", _record.c.patient_id.type),
            column("key_hash", _key.c.key_hash.type),
            column("shared", Integer),
        )
    )
    blocked = select(_block.c.patient_id, _block.c.other_id).where(
        or_(
            _block.c.patient_id == any_(bindparam("ids", type_=ids)),
            _block.c.other_id == any_(bindparam("ids", type_=ids)),
        )
    )
    return own, shared, blocked


_PREFETCH = "adapter.identity.near-prefetched"  # BatchWrites.reads: ``prefetch_near``'s


@dataclass(slots=True)
class _Prefetched:
    """What ``prefetch_near`` read at a batch's start, and what the batch wrote since: an
    answer is given only while none of its keys, nor its record or a record in it, was
    written (``forget_near``)."""

    limit: int
    answers: dict[tuple[str, frozenset[str]], Near]
    hashes: set[str] = field(default_factory=set)  # keys written or dropped since
    records: set[str] = field(default_factory=set)  # records written since


def prefetch_near(session: Session, asked: Iterable[tuple[str, set[str]]], *, limit: int) -> None:
    """PostgreSQL, a bulk batch holding the patient index's locks of its Patients
    (``lock_batch``): ``near`` of each (record, its key hashes), with its own rows, read
    for all of them in three statements instead of one or two a Patient. The batch's later
    ``near`` asks the database again only for an answer a write of the batch changed (a
    new record sharing a key, keys written, a record updated) or one not asked here."""
    writes = held_writes(session)
    wanted = {(record, frozenset(hashes)) for record, hashes in asked}
    if writes is None or not wanted or bind_of(session).dialect.name != "postgresql":
        return
    own, shared, blocked = _batch_statements()
    records = sorted({record for record, _ in wanted})
    pairs = sorted({(record, h) for record, hashes in wanted for h in hashes})
    answers = {key: Near() for key in wanted}
    mine: dict[str, Near] = {record: Near() for record in records}
    _own_by_record(mine, execute_rows(session, own, {"ids": records}, flush=False))
    found: list[Row[Any]] = []
    if pairs:
        params = {
            "asked": [p[0] for p in pairs],
            "hashed": [p[1] for p in pairs],
            "limit": limit,
            "probe": limit * PROBE,
            "counted": limit * PROBE + 1,
        }
        found = execute_rows(session, shared, params, flush=False)
    pairs_blocked: set[tuple[str, str]] = set()
    if found:
        for a, b in execute_rows(session, blocked, {"ids": records}, flush=False):
            pairs_blocked.update(((a, b), (b, a)))
    by_pair: dict[tuple[str, str], list[Row[Any]]] = {}
    for row in found:
        by_pair.setdefault((row.asked, row.key_hash), []).append(row)
    for (record, hashes), out in answers.items():
        out.existing = mine[record].existing
        out.stored_keys = set(mine[record].stored_keys)
        rows = [r for h in sorted(hashes) for r in by_pair.get((record, h), ())]
        if not rows:
            continue
        out.largest = max(r.shared for r in rows)
        out.omitted = max(0, out.largest - limit)
        out.counted = limit * PROBE
        out.others = [(r, r.key_hash, (record, r.patient_id) in pairs_blocked) for r in rows]
    writes.reads[_PREFETCH] = _Prefetched(limit, answers)


def _own_by_record(mine: dict[str, Near], found: Iterable[Row[Any]]) -> None:
    for row in found:
        _own_rows(mine[row.patient_id], [row])


def _prefetched_answer(
    session: Session, patient_id: str, hashes: Collection[str], *, limit: int, own: bool
) -> Near | None:
    """``prefetch_near``'s answer for this ``near``, when it read it and nothing the batch
    wrote since changed it (a copy: the resolver extends ``others``); else None."""
    writes = held_writes(session)
    early = None if writes is None else writes.reads.get(_PREFETCH)
    if early is None or not own or limit != early.limit:
        return None
    found = early.answers.get((patient_id, frozenset(hashes)))
    if found is None or patient_id in early.records or not early.hashes.isdisjoint(hashes):
        return None
    if any(other.patient_id in early.records for other, _, _ in found.others):
        return None
    return replace(found, stored_keys=set(found.stored_keys), others=list(found.others))


def write_keys(
    session: Session, patient_id: str, hashes: Collection[str], stored: set[str]
) -> None:
    """The record's keys become ``hashes`` (``stored``: what it has now); nothing is written
    when they are the same."""
    if set(hashes) == stored:
        return
    forget_near(session, hashes={*hashes, *stored}, records=[patient_id])
    note_stored_keys(session, hashes)
    if stored:
        execute_rows(session, _DELETE_KEYS, {"patient_id": patient_id}, flush=False)
    if hashes:
        insert_rows(
            session, _key, [{"key_hash": h, "patient_id": patient_id} for h in sorted(hashes)]
        )


_DELETE_KEYS = delete(_key).where(_key.c.patient_id == bindparam("patient_id"))
# SET takes the parameters' other keys
_UPDATE_RECORD = update(_record).where(_record.c.patient_id == bindparam("b_patient_id"))


def insert_record(session: Session, row: dict[str, Any], keys: Collection[str] = ()) -> None:
    """A new identity_record row (every column given) and its key hashes ``keys``: on
    PostgreSQL one statement (the keys' INSERT in a WITH clause: one round trip fewer for
    every new patient, decision 0060), elsewhere two Core INSERTs."""
    forget_near(session, hashes=keys, records=[row["patient_id"]])
    hashes = sorted(keys)
    note_stored_keys(session, hashes)
    if hashes and bind_of(session).dialect.name == "postgresql":
        columns = tuple(row)
        values = {f"k{i}": h for i, h in enumerate(hashes)}
        values.update({f"r_{c}": row[c] for c in columns}, kp=row["patient_id"])
        # on psycopg's driver (decision 0141): one statement a new patient, ~0.9 a message
        execute_rows(session, _record_with_keys(columns, len(hashes)), values, flush=False)
        return
    insert_rows(session, _key, [{"key_hash": h, "patient_id": row["patient_id"]} for h in hashes])
    insert_rows(session, _record, [row])


@lru_cache(maxsize=32)
def _record_with_keys(columns: tuple[str, ...], keys: int) -> TextClause:
    """PostgreSQL's record and its ``keys`` key rows in one statement (the keys' INSERT in
    a WITH clause, decision 0060), as text with typed parameters, made once per shape:
    SQLAlchemy caches no statement holding an INSERT in a WITH clause, so the expression
    form was compiled again for every new patient (found in decision 0083's profile)."""
    rows = ", ".join(f"(:k{i}, :kp)" for i in range(keys))
    names = ", ".join(f'"{c}"' for c in columns)
    params = ", ".join(f":r_{c}" for c in columns)
    return text(
        f"WITH keyed AS (INSERT INTO identity_key (key_hash, patient_id) VALUES {rows}) "
        f"INSERT INTO identity_record ({names}) VALUES ({params})"
    ).bindparams(
        *(bindparam(f"k{i}", type_=_key.c.key_hash.type) for i in range(keys)),
        bindparam("kp", type_=_key.c.patient_id.type),
        *(bindparam(f"r_{c}", type_=_record.c[c].type) for c in columns),
    )


def update_record(session: Session, patient_id: str, values: dict[str, Any]) -> None:
    """Set ``values`` on the record ``patient_id``, one Core UPDATE."""
    forget_near(session, hashes=(), records=[patient_id])
    execute_rows(session, _UPDATE_RECORD, {"b_patient_id": patient_id, **values}, flush=False)


def candidates(session: Session, hashes: list[str], patient_id: str) -> list[IdentityRecord]:
    if not hashes:
        return []
    ids = select(IdentityKey.patient_id).where(
        IdentityKey.key_hash.in_(hashes), IdentityKey.patient_id != patient_id
    )
    return list(
        session.scalars(
            select(IdentityRecord)
            .where(IdentityRecord.patient_id.in_(ids))
            .order_by(IdentityRecord.created_at, IdentityRecord.patient_id)
        )
    )


def history(
    session: Session,
    *,
    at: datetime,
    action: str,
    actor: str,
    patient_id: str | None = None,
    person_id: str | None = None,
    previous_person_id: str | None = None,
    reason: str | None = None,
    rule_version: int | None = None,
    rule: str | None = None,
    score: float | None = None,
    evidence: Any = None,
) -> None:
    """One identity_history row. In a bulk batch it waits for the batch's commit with the
    other write-only rows (nothing in the batch reads identity_history: only the API's
    link history does); else it is inserted at once (Core, no unit of work)."""
    row = {
        "at": at,
        "action": action,
        "patient_id": patient_id,
        "person_id": person_id,
        "previous_person_id": previous_person_id,
        "actor": actor,
        "reason": reason,
        "rule_version": rule_version,
        "rule": rule,
        "score": score,
        "evidence": evidence,
    }
    writes = held_writes(session)
    if writes is not None:
        writes.add_rows(_history, [row])
    else:
        insert_rows(session, _history, [row])


def link_snapshot(row: IdentityRecord) -> dict[str, Any]:
    """A link exactly as it is (what unmerge puts back)."""
    return {
        "patient_id": row.patient_id,
        "person_id": row.person_id,
        "link_kind": row.link_kind,
        "rule_version": row.rule_version,
        "rule": row.rule,
        "score": row.score,
        "evidence": row.evidence,
    }

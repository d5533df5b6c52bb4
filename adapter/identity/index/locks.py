"""One writer per person: the index serialises on the normalised keys of the records it
touches (docs/decisions: the patient index).

Each key (a national ID in its 18-digit form, a card number, birth date + surname reading, the
record itself) is hashed; on PostgreSQL the transaction takes ``pg_advisory_xact_lock`` on
each hash (scoped to the adapter's schema: adapter/store/advisory.py), in ascending order so
that two transactions wanting overlapping keys queue instead of deadlocking, and holds them
until it ends. On SQLite every writing transaction holds the database write lock from BEGIN
IMMEDIATE, which serialises the index already.

``serialise_records`` does it in one statement, the stored keys of the records included:
one round trip for a message's Patients instead of one per key (decision 0048). A bulk batch
on PostgreSQL takes them for all its messages' Patients at its start (``serialise_batch``);
a message then takes only those it needs and the batch does not hold yet, usually none: no
statement (decision 0101).
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

from sqlalchemy import text
from sqlalchemy.orm import Session

from adapter.store.advisory import SCOPE, lock_all
from adapter.store.resources import held_writes
from adapter.store.types import uuid_bytes


def key_hash(key: str) -> str:
    """The stored form of a blocking key (no national ID or card number in clear)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _lock_id(hashed: str) -> int:
    value = int(hashed[:16], 16)
    return value - (1 << 64) if value >= (1 << 63) else value  # a signed bigint


def serialise(session: Session, hashes: Iterable[str]) -> None:
    """Hold the lock of every key hash until the transaction ends."""
    if session.get_bind().dialect.name != "postgresql":
        return
    lock_all(session, (_lock_id(h) for h in hashes))


# every lock of the set (scoped to the schema) in ascending order (the sorted subquery feeds
# the aggregate row by row), the keys the records have stored among them: what serialise()
# takes after records.stored_hashes(), read and locked in one statement
_LOCK_WITH_STORED = text(
    "SELECT count(pg_advisory_xact_lock(k)) FROM ("
    f" SELECT k # {SCOPE} AS k FROM ("
    "  SELECT unnest(CAST(:given AS bigint[])) AS k"
    "  UNION"
    "  SELECT ('x' || encode(substring(key_hash FROM 1 FOR 8), 'hex'))::bit(64)::bigint"
    "  FROM identity_key"
    "  WHERE patient_id = ANY(CAST(:records AS bytea[]))"  # as stored (decision 0123)
    " ) AS wanted ORDER BY 1"
    ") AS ordered"
)


def serialise_records(session: Session, hashes: Iterable[str], records: Collection[str]) -> None:
    """Hold the lock of every key hash, and of every key the ``records`` have stored
    (identity_key), until the transaction ends."""
    if session.get_bind().dialect.name != "postgresql":
        return
    given = sorted({_lock_id(h) for h in hashes})
    stored = [uuid_bytes(r) for r in sorted(set(records))]
    session.execute(_LOCK_WITH_STORED, {"given": given, "records": stored})


# the bulk batch's locks, in its ``BatchWrites.reads``: forgotten when a message of the batch
# is rolled back to its savepoint (the locks it took went with it), the batch's messages
# then lock as a single message does
_BATCH = "adapter.identity.batch-locks"


@dataclass(slots=True)
class _BatchLocks:
    ids: set[int]  # lock ids (unscoped) this transaction holds
    records: set[str]  # records whose stored keys it locked at the batch's start
    written: set[int] = field(default_factory=set)  # keys the batch stored since


def serialise_batch(session: Session, hashes: Iterable[str], records: Collection[str]) -> None:
    """PostgreSQL, a bulk batch (adapter/pipeline/bulk.py), before its first message:
    ``serialise_records`` for the Patients of all its messages, in one statement; each
    message's ``serialise_held`` then needs none (decision 0101). Elsewhere nothing."""
    writes = held_writes(session)
    if writes is None or session.get_bind().dialect.name != "postgresql":
        return
    hashes = set(hashes)
    serialise_records(session, hashes, records)
    writes.reads[_BATCH] = _BatchLocks({_lock_id(h) for h in hashes}, set(records))


def serialise_held(session: Session, hashes: Iterable[str], records: Collection[str]) -> bool:
    """In a batch that ``serialise_batch`` locked: lock what ``serialise_records`` would lock
    and the batch does not hold yet (the keys the batch's earlier messages stored for any
    record: they are the ones the records have stored now that were not there at the
    batch's start). False: not such a batch, or records it did not see; lock as before."""
    writes = held_writes(session)
    held = None if writes is None else writes.reads.get(_BATCH)
    if held is None or not held.records.issuperset(records):
        return False
    missing = ({_lock_id(h) for h in hashes} | held.written) - held.ids
    if missing:
        lock_all(session, missing)
        held.ids |= missing
    return True


def note_stored_keys(session: Session, hashes: Iterable[str]) -> None:
    """Key hashes a record stored in this transaction (identity_key rows written)."""
    writes = held_writes(session)
    held = None if writes is None else writes.reads.get(_BATCH)
    if held is not None:
        held.written.update(_lock_id(h) for h in hashes)

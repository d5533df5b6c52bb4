"""One writer per person: the index serialises on the normalised keys of the records it
touches (docs/decisions: the patient index).

Each key (a national ID in its 18-digit form, a card number, birth date + surname reading, the
record itself) is hashed; on PostgreSQL the transaction takes ``pg_advisory_xact_lock`` on
each hash (scoped to the adapter's schema: adapter/store/advisory.py), in ascending order so
that two transactions wanting overlapping keys queue instead of deadlocking, and holds them
until it ends. On SQLite every writing transaction holds the database write lock from BEGIN
IMMEDIATE, which serialises the index already.

``serialise_records`` does it in one statement, the stored keys of the records included:
one round trip for a message's Patients instead of one per key (decision 0048).
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable

from sqlalchemy import text
from sqlalchemy.orm import Session

from adapter.store.advisory import SCOPE, lock_all


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
    "  WHERE patient_id = ANY(CAST(:records AS varchar[]))"
    " ) AS wanted ORDER BY 1"
    ") AS ordered"
)


def serialise_records(session: Session, hashes: Iterable[str], records: Collection[str]) -> None:
    """Hold the lock of every key hash, and of every key the ``records`` have stored
    (identity_key), until the transaction ends."""
    if session.get_bind().dialect.name != "postgresql":
        return
    given = sorted({_lock_id(h) for h in hashes})
    session.execute(_LOCK_WITH_STORED, {"given": given, "records": sorted(set(records))})

"""PostgreSQL advisory locks scoped to the adapter's schema.

``pg_advisory_xact_lock(k)`` is one lock per *database*, whatever the ``search_path``: two
adapters (or a test run and a benchmark) on one database in two schemas took the same audit
chain lock and, for the same patient keys, the same identity locks, so one schema's batch
transaction held the other's for seconds (decision 0090: a drain stalled 0.1–0.8 s per batch
behind another schema's bulk ingest of the same patients). Every key is therefore mixed
(XOR) with a hash of ``current_schema()``, the schema the adapter's tables are in: one
schema's transactions still serialise on the same keys, another schema's never meet them.
(The resource creator locks, adapter/store/resources.py, use the two-integer form with the
schema's hash as their class, to the same end.)
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import text
from sqlalchemy.orm import Session

# the schema's 64-bit salt, computed by the server (hashtextextended: PostgreSQL >= 11;
# never NULL, which would make pg_advisory_xact_lock lock nothing)
SCOPE = "hashtextextended(coalesce(current_schema(), ''), 0)"

# every key of the set in ascending order of its scoped value (the sorted subquery feeds
# the aggregate row by row, so two transactions wanting overlapping keys queue instead of
# deadlocking)
_LOCK_ALL = text(
    "SELECT count(pg_advisory_xact_lock(k)) FROM ("
    f" SELECT DISTINCT k # {SCOPE} AS k FROM unnest(CAST(:keys AS bigint[])) AS k ORDER BY 1"
    ") AS ordered"
)
_LOCK_ONE = text(f"SELECT pg_advisory_xact_lock(:key # {SCOPE})")


def lock_all(session: Session, keys: Iterable[int]) -> None:
    """Hold the schema's lock of every key until the transaction ends (PostgreSQL only)."""
    wanted = sorted(set(keys))
    if wanted:
        session.execute(_LOCK_ALL, {"keys": wanted})


def lock(session: Session, key: int) -> None:
    """Hold the schema's lock of ``key`` until the transaction ends (PostgreSQL only)."""
    session.execute(_LOCK_ONE, {"key": key})

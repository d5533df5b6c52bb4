"""A condition matching a set of (resource type, id) keys that both databases answer from
the primary key.

``tuple_(type, id).in_(keys)`` renders on SQLite as ``(type, id) IN (VALUES (?, ?), ...)``,
which SQLite's planner cannot drive from the (type, id) primary key: it reads the whole
table once per statement, so the cost of every message grew with the store (154 ms per
message at 20,000 stored lab messages against 0.02 ms with a key lookup; issue 14,
docs/decisions/0034-bulk-ingest.md). Grouped by type, ``type = ? AND id IN (?, ...)``
is a key lookup per id on SQLite and an index scan on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import ColumnElement, and_, false, or_


def keys_in(
    type_column: ColumnElement[str], id_column: ColumnElement[str], keys: Iterable[tuple[str, str]]
) -> ColumnElement[bool]:
    by_type: dict[str, list[str]] = {}
    for rtype, rid in keys:
        by_type.setdefault(rtype, []).append(rid)
    if not by_type:
        return false()
    return or_(
        *(
            and_(type_column == rtype, id_column.in_(sorted(set(ids))))
            for rtype, ids in sorted(by_type.items())
        )
    )

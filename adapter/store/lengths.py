"""Whether a value fits the ``varchar(n)`` column it is to be stored in.

PostgreSQL refuses a longer value (SQLSTATE 22001) and SQLite stores it whole: callers ask
here before writing, so both databases refuse the same values, with a message naming the
parameter or element and the lengths (never the value: it can be a name).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column


def limit_of(column: Column[Any]) -> int | None:
    length = getattr(column.type, "length", None)
    return int(length) if length else None


def over_limit(column: Column[Any], value: str | None, what: str) -> str | None:
    """``doctor is 300 characters; at most 255 are kept``, or None when ``value`` fits."""
    limit = limit_of(column)
    if value is None or limit is None or len(value) <= limit:
        return None
    return f"{what} is {len(value)} characters; at most {limit} are kept"

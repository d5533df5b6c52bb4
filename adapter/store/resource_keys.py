"""The integer that stands for a resource in ``search_index`` (decision 0055).

``resource.resource_key`` is given once, when the resource row is first written, and never
changes; the index rows name the resource by it instead of by (type, id). The store gives
the keys before it writes the rows (the index rows of a bulk batch are built, and held,
before their resource rows are inserted):

* PostgreSQL: the next values of ``resource_key_seq`` (also the column's default, which a
  ``lock_resources`` placeholder takes);
* SQLite: above the highest key stored and the highest this session gave out. The
  transaction holds the database's write lock from its BEGIN IMMEDIATE, so no other writer
  gives keys meanwhile; a key given to a rolled-back write is only a gap.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from adapter.store.models import Resource

_resource = Resource.__table__
_TOP: Final = "adapter.store.resource_key_top"  # session.info: the highest key given here
_NEXT = text("SELECT nextval('resource_key_seq') FROM generate_series(1, :n)")


def new_keys(session: Session, count: int) -> list[int]:
    """``count`` keys no resource has."""
    if count <= 0:
        return []
    if session.get_bind().dialect.name == "postgresql":
        return list(session.execute(_NEXT, {"n": count}).scalars())
    stored = session.execute(select(func.max(_resource.c.resource_key))).scalar() or 0
    start = max(stored, session.info.get(_TOP, 0)) + 1
    session.info[_TOP] = start + count - 1
    return list(range(start, start + count))

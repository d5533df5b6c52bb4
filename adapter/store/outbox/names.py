"""The outbox row's names stored as small integers (decision 0079).

``outbox.destination_id`` names a row of ``outbox_destination`` (the destination's name,
once): created and cached as adapter/store/interning.py describes. Queries find a
destination's rows by its id, read once per call (``destination_filter``): a destination
without an id has no rows. Rows read for callers carry the name again (``ROW``: the
table's columns with ``destination`` read through ``outbox_destination``), so
:class:`OutboxRow` and everything above it see the names as before.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import ColumnElement, false, select
from sqlalchemy.orm import Session

from adapter.store.interning import Interned
from adapter.store.models import Outbox, OutboxDestination

_o = Outbox.__table__
_od = OutboxDestination.__table__

_DESTINATIONS: Interned[str] = Interned(_od, "destination_id", ("destination",), lambda n: (n,))

# a row's destination by name, read through the small table (a primary key probe per row)
DESTINATION = (
    select(_od.c.destination)
    .where(_od.c.destination_id == _o.c.destination_id)
    .scalar_subquery()
    .label("destination")
)
# what a read of whole rows selects (and a claim returns): ``OutboxRow``'s columns
ROW: tuple[Any, ...] = (*(c for c in _o.c if c.name != "destination_id"), DESTINATION)


def destination_ids(session: Session, names: Iterable[str]) -> dict[str, int]:
    """The id of each destination, created where the store has none yet (enqueue)."""
    return _DESTINATIONS.ids(session, names)


def known_destination_ids(session: Session, names: Iterable[str]) -> dict[str, int]:
    """The ids of those destinations the store has (none created)."""
    return _DESTINATIONS.known(session, names)


def destination_key(session: Session, name: str) -> int:
    """``name``'s id, or 0 (no row's: the ids start at 1) when it has none, so a query for
    an unknown destination keeps its plan and finds nothing."""
    return known_destination_ids(session, [name]).get(name, 0)


def destination_filter(session: Session, name: str, table: Any = _o) -> ColumnElement[bool]:
    """``destination_id`` of ``table`` (the outbox or an alias of it) is ``name``'s."""
    return table.c.destination_id == destination_key(session, name)


def destinations_filter(session: Session, names: Iterable[str]) -> ColumnElement[bool]:
    """``outbox.destination_id`` is one of ``names``'."""
    found = sorted(known_destination_ids(session, names).values())
    return _o.c.destination_id.in_(found) if found else false()


def destination_names(session: Session, ids: Iterable[int]) -> dict[int, str]:
    """id -> name of these destination ids."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    return dict(
        session.execute(
            select(_od.c.destination_id, _od.c.destination).where(_od.c.destination_id.in_(wanted))
        ).all()
    )

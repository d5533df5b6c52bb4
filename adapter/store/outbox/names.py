"""The outbox row's names stored as integers (decisions 0079, 0084).

``outbox.destination_id`` names a row of ``outbox_destination`` (the destination's name,
once): created and cached as adapter/store/interning.py describes. Queries find a
destination's rows by its id, read once per call (``destination_filter``): a destination
without an id has no rows. Rows read for callers carry the name again (``ROW``: the
table's columns with ``destination`` read through ``outbox_destination``), so
:class:`OutboxRow` and everything above it see the names as before.

``outbox.resource_key`` names the resource (``resource.resource_key``): ``rows_of`` reads
the type, id and patient of the rows' resources in one query (by the resource table's
unique ``resource_key`` index) and makes the rows' ``OutboxRow``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import ColumnElement, false, select
from sqlalchemy.orm import Session

from adapter.store.interning import Interned
from adapter.store.models import Outbox, OutboxDestination, Resource
from adapter.store.outbox.rows import OutboxRow, ResourceNames

_o = Outbox.__table__
_od = OutboxDestination.__table__
_r = Resource.__table__
_CHUNK = 500  # keys per SELECT: under SQLite's bound parameter limit

_DESTINATIONS: Interned[str] = Interned(_od, "destination_id", ("destination",), lambda n: (n,))

# a row's destination by name, read through the small table (a primary key probe per row)
DESTINATION = (
    select(_od.c.destination)
    .where(_od.c.destination_id == _o.c.destination_id)
    .scalar_subquery()
    .label("destination")
)
# what a read of whole rows selects: the table's columns and the destination's name
# (``rows_of`` adds the resource's type, id and patient for ``OutboxRow``)
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


def resource_names(session: Session, keys: Iterable[int]) -> dict[int, ResourceNames]:
    """resource_key -> (type, id, patient key) of these resources."""
    wanted = sorted(set(keys))
    out: dict[int, ResourceNames] = {}
    for at in range(0, len(wanted), _CHUNK):
        found = session.execute(
            select(_r.c.resource_key, _r.c.resource_type, _r.c.id, _r.c.patient_key).where(
                _r.c.resource_key.in_(wanted[at : at + _CHUNK])
            )
        )
        out.update((key, (rtype, rid, patient)) for key, rtype, rid, patient in found)
    return out


def rows_of(
    session: Session, found: Iterable[Mapping[str, Any]], destination: str | None = None
) -> list[OutboxRow]:
    """``OutboxRow`` of each row read (``ROW``, or the table's columns with ``destination``),
    in the order read."""
    rows = list(found)
    names = resource_names(session, (row["resource_key"] for row in rows))
    return [OutboxRow.of(row, names[row["resource_key"]], destination) for row in rows]

"""A resource's facility stored as a small integer (decision 0118).

``resource.facility_key`` names a row of ``facility_name`` (each facility's id once),
created and cached as adapter/store/interning.py describes: a write looks the key up in
the cache (created on first use), a query compares the column with a subquery of the
small table (an unknown facility matches nothing), and a read that wants the name selects
``name_of`` (a primary key probe of the small table per row).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from adapter.store.interning import Interned
from adapter.store.models import FacilityName

_f = FacilityName.__table__

_FACILITIES: Interned[str] = Interned(_f, "facility_key", ("name",), lambda n: (n,))


def facility_key(session: Session, name: str | None) -> int | None:
    """``name``'s key, created where the store has none yet (a write)."""
    if name is None:
        return None
    return _FACILITIES.ids(session, [name])[name]


def key_of(name: str) -> Any:
    """The key of facility ``name`` in SQL (NULL when unknown: nothing equals it)."""
    return select(_f.c.facility_key).where(_f.c.name == name).scalar_subquery()


def name_of(column: ColumnElement[int | None], label: str = "facility_id") -> Any:
    """The facility's name for a key column, labelled ``label`` (NULL for NULL)."""
    return select(_f.c.name).where(_f.c.facility_key == column).scalar_subquery().label(label)

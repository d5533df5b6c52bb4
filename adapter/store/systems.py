"""The token ``system`` of ``search_index`` as a small integer (decision 0059).

A handful of code systems (``http://loinc.org``, a facility's identifier namespaces, the
unit system) repeat in most token and quantity rows; ``search_index.system_id`` names one
row of ``search_system`` instead of repeating the URI in every row and every token index
entry. The rows are created and cached as adapter/store/interning.py describes; the lookup
is by the SHA-256 of the system (a URI may be longer than a b-tree entry allows).

Searches compare ``system_id`` with a scalar subquery of the hash (``system_id_of``), so
an unknown system matches nothing and no process state can be stale.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Engine, ScalarSelect, select
from sqlalchemy.orm import Session

from adapter.store.interning import Interned
from adapter.store.models import SearchSystem

_system = SearchSystem.__table__


def system_hash(system: str) -> str:
    """The lookup key of a system: a URI may be longer than a b-tree entry allows."""
    return hashlib.sha256(system.encode("utf-8")).hexdigest()


_SYSTEMS: Interned[str] = Interned(
    _system,
    "system_id",
    ("system_hash",),
    lambda system: (system_hash(system),),
    lambda system: {"system": system},
)


def system_id_of(system: str) -> ScalarSelect[Any]:
    """``(SELECT system_id FROM search_system WHERE system_hash = ...)``: NULL when unknown,
    which equals nothing."""
    return (
        select(_system.c.system_id)
        .where(_system.c.system_hash == system_hash(system))
        .scalar_subquery()
    )


def known_ids(session: Session, systems: Iterable[str]) -> dict[str, int]:
    """The ids of those ``systems`` the store has (read, none created)."""
    return _SYSTEMS.known_ids(session, systems)


def system_ids(session: Session, systems: Iterable[str]) -> dict[str, int]:
    """The id of each of ``systems``, created where the store has none yet."""
    return _SYSTEMS.ids(session, systems)


def forget(engine: Engine | None = None) -> None:
    """Drop the cached ids of ``engine``, or of every engine (after a search_system table
    was emptied under them)."""
    _SYSTEMS.forget(engine)

"""The integer that stands for a resource in ``search_index`` (decision 0055).

``resource.resource_key`` is given once, when the resource row is first written, and never
changes; the index rows name the resource by it instead of by (type, id). The store gives
the keys before it writes the rows (the index rows of a bulk batch are built, and held,
before their resource rows are inserted):

* PostgreSQL: the next values of ``resource_key_seq`` (also the column's default, which a
  ``lock_resources`` placeholder takes). A session that asks many times (a bulk batch asks
  twice per message) takes them in blocks and keeps the rest for its next calls: a value
  the sequence gave is never given again, committed or not, so the rest stays unused
  anywhere else; what the session does not use is only a gap;
* SQLite: above the highest key stored and the highest this session gave out. The
  transaction holds the database's write lock from its BEGIN IMMEDIATE, so no other writer
  gives keys meanwhile; a key given to a rolled-back write is only a gap. The highest key
  stored is read once per transaction, not per call: every resource row this transaction
  writes takes its key from here (decision 0055), so after that read the highest key given
  is the highest there is (a bulk batch called this twice per message: decision 0050,
  amended 2026-12-04 night).
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from adapter.fhir.search_params import RESOURCES
from adapter.store.index_keys import KEY_CHARS
from adapter.store.keys import keys_in
from adapter.store.models import Resource

_resource = Resource.__table__
# session.info: (the transaction that read the highest key stored, the highest key given)
_TOP: Final = "adapter.store.resource_key_top"
_HIGHEST = select(func.max(_resource.c.resource_key))
_POOL: Final = "adapter.store.resource_key_pool"  # session.info: [calls, unused sequence values]
_POOL_AFTER = 4  # calls of a session before it takes blocks (one message alone makes two)
_POOL_BLOCK = 128
_NEXT = text("SELECT nextval('resource_key_seq') FROM generate_series(1, :n)")


def new_keys(session: Session, count: int) -> list[int]:
    """``count`` keys no resource has."""
    if count <= 0:
        return []
    if session.get_bind().dialect.name == "postgresql":
        return _from_sequence(session, count)
    transaction = session.get_transaction()
    read_in, top = session.info.get(_TOP, (None, 0))
    if read_in is None or read_in is not transaction:  # the first call of this transaction
        stored = session.execute(_HIGHEST).scalar() or 0
        top = max(stored, top)
        transaction = session.get_transaction()  # begun by the read when none was
    start = top + 1
    session.info[_TOP] = (transaction, start + count - 1)
    return list(range(start, start + count))


def _from_sequence(session: Session, count: int) -> list[int]:
    pool = session.info.setdefault(_POOL, [0, []])
    pool[0] += 1
    unused: list[int] = pool[1]
    if len(unused) < count:
        block = count if pool[0] <= _POOL_AFTER else max(count - len(unused), _POOL_BLOCK)
        unused.extend(session.execute(_NEXT, {"n": block}).scalars())
    given, pool[1] = unused[:count], unused[count:]
    return given


_CHUNK = 500  # keys per SELECT: well under SQLite's bound parameter limit


def local_target(reference: str) -> tuple[str, str] | None:
    """(type, id) of a reference ``search_index`` may hold as its target's key (decision
    0080): ``Type/id`` of a type the store indexes, short enough to be its own key (a
    longer one keeps ``reference_full``). Every other reference stays text."""
    rtype, slash, rid = reference.partition("/")
    if not slash or not rid or "/" in rid or rtype not in RESOURCES or len(reference) >= KEY_CHARS:
        return None
    return rtype, rid


def target_keys(session: Session, references: set[str]) -> dict[str, int]:
    """``Type/id`` -> ``resource_key`` of the references (index rows' text) that name a
    resource row of the store (live, deleted or a placeholder: a key never changes). A
    reference to a resource not stored (yet) is not in the answer: its row keeps the text,
    which searches also read."""
    found: dict[str, int] = {}
    wanted = [target for r in references if (target := local_target(r)) is not None]
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start : start + _CHUNK]
        query = select(_resource.c.resource_type, _resource.c.id, _resource.c.resource_key).where(
            keys_in(_resource.c.resource_type, _resource.c.id, chunk)
        )
        for rtype, rid, key in session.execute(query):
            found[f"{rtype}/{rid}"] = key
    return found

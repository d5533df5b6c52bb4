"""Whether the stored search index is what the current code derives from the stored
resources (decision 0130): ``adapter store check-index``, and the tests' check after a
mixed ingest.

For each current resource (chunks of ``CHUNK``, a transaction each, rolled back): its
stored rows are read, deleted, written again from its body exactly as ``reindex`` writes
them, read again, and the two readings compared. Nothing is left changed (the interning
tables may gain a row: they only grow; on PostgreSQL the rolled-back rows are dead tuples
for autovacuum). A reading names every interned id by
what it stands for (``search_param``'s type, parameter and kind; ``search_system``'s
text; on PostgreSQL each ``search_terms`` element's parameter and target, each
dictionary id's parameter, system, code and text): a row whose ``param_id`` names
another parameter than the one its value belongs to differs here even where the ids
themselves were reused. Rows of no current resource (deleted or absent) are counted
apart.

The interning caches of the session's engine are forgotten first (``forget_all``): the
derived rows take their ids from the tables, not from what this process remembered.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import tzinfo
from typing import Any

from sqlalchemy import bindparam, select, text
from sqlalchemy.orm import Session

from adapter.fhir.dates import DEFAULT_ZONE
from adapter.fhir.index_values import index_values
from adapter.store.interning import forget_all
from adapter.store.models import Resource
from adapter.store.resources import _delete_index_rows, _index_tuples, _insert_index_tuples
from adapter.store.search_terms import SHIFT, TARGET_MAX, uses_terms

CHUNK = 200  # resources per savepoint
_resource = Resource.__table__

# a stored row without its number, its ids named (``_named``): resource key first
_ROWS = text(
    "SELECT i.resource_key, i.param_id, i.system_id, i.kind, i.code, i.value, i.value_norm,"
    " i.value_date_start, i.value_date_end, i.value_number, i.target_key, i.reference,"
    " i.code_full, i.value_norm_full, i.reference_full FROM search_index i"
    " WHERE i.resource_key IN :keys"
).bindparams(bindparam("keys", expanding=True))
_TERMS = text(
    "SELECT resource_key, refs, toks FROM search_terms WHERE resource_key IN :keys"
).bindparams(bindparam("keys", expanding=True))
_TOKENS = text(
    "SELECT token_id, param_id, system_id, code, value_norm FROM search_token"
    " WHERE token_id IN :ids"
).bindparams(bindparam("ids", expanding=True))
# index rows and arrays of no current resource
_ORPHANS = (
    "SELECT count(*) FROM {table} i WHERE NOT EXISTS (SELECT 1 FROM resource r"
    " WHERE r.resource_key = i.resource_key AND r.deleted = {false})"
)


@dataclass
class Difference:
    """One resource whose stored rows are not the derived ones: the rows only stored and
    the rows only derived (as ``_named`` reads them)."""

    resource_type: str
    resource_id: str
    resource_key: int
    stored_only: list[tuple[Any, ...]]
    derived_only: list[tuple[Any, ...]]


@dataclass
class IndexCheck:
    """What ``check_index`` found."""

    resources: int = 0
    rows: int = 0  # stored rows and array elements compared
    differences: list[Difference] = field(default_factory=list)
    different: int = 0  # resources that differ (``differences`` holds the first ``keep``)
    by_param: Counter[tuple[Any, ...]] = field(default_factory=Counter)  # stored-only rows
    orphans: int = 0  # rows and arrays of no current resource

    @property
    def ok(self) -> bool:
        return not self.different and not self.orphans


class _Names:
    """The interned ids named: parameters and systems read once, dictionary ids per chunk."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.tokens: dict[int, tuple[Any, ...]] = {}
        self.refresh()

    def refresh(self) -> None:
        """Read the parameters and systems (again: a derivation may have created one)."""
        session = self.session
        self.params = {
            pid: (rtype, param, kind)
            for pid, rtype, param, kind in session.execute(
                text("SELECT param_id, resource_type, param, kind FROM search_param")
            )
        }
        self.systems = dict(
            session.execute(text("SELECT system_id, system FROM search_system")).all()
        )

    def param(self, pid: int | None) -> Any:
        return self.params.get(pid, ("unknown param_id", pid)) if pid is not None else None

    def system(self, sid: int | None) -> Any:
        if sid is None or sid <= 0:  # none, or a dictionary's own mark (-1 string, -2 valued)
            return sid
        return self.systems.get(sid, ("unknown system_id", sid))

    def read_tokens(self, ids: set[int]) -> None:
        wanted = sorted(ids - self.tokens.keys())
        for start in range(0, len(wanted), 5000):
            rows = self.session.execute(_TOKENS, {"ids": wanted[start : start + 5000]})
            for tid, pid, sid, code, norm in rows:
                self.tokens[tid] = (self.param(pid), self.system(sid), code, norm)


def _named(session: Session, names: _Names, keys: list[int]) -> dict[int, Counter[Any]]:
    """The stored rows of ``keys``, per resource key, each id named by what it stands for."""
    out: dict[int, Counter[Any]] = {k: Counter() for k in keys}
    for row in session.execute(_ROWS, {"keys": keys}):
        rkey, pid, sid, *rest = row
        out[rkey][("row", names.param(pid), names.system(sid), *rest)] += 1
    if uses_terms(session):
        terms = session.execute(_TERMS, {"keys": keys}).all()
        names.read_tokens({t for _, _, toks in terms for t in toks})
        for rkey, refs, toks in terms:
            for element in refs:
                target = element & TARGET_MAX
                out[rkey][("ref", names.param(element >> SHIFT), target)] += 1
            for tid in toks:
                out[rkey][("tok", names.tokens.get(tid, ("unknown token_id", tid)))] += 1
    return out


def orphan_rows(session: Session) -> int:
    """Index rows (and PostgreSQL arrays) of no current resource."""
    false = "FALSE" if uses_terms(session) else "0"
    tables = ["search_index", "search_terms"] if uses_terms(session) else ["search_index"]
    return sum(
        session.execute(text(_ORPHANS.format(table=t, false=false))).scalar_one() for t in tables
    )


def check_index(
    session: Session,
    zone: tzinfo = DEFAULT_ZONE,
    resource_type: str | None = None,
    *,
    keep: int = 20,
) -> IndexCheck:
    """Compare every current resource's stored index with the one derived from its body
    (module docstring). Each chunk is a transaction of its own, rolled back: ``session``
    must hold nothing uncommitted, and on SQLite the write lock is held one chunk at a time.
    A resource that differs is checked once more at the end (a write beside the check
    may have changed it between the readings): only a difference seen twice counts."""
    forget_all(session.get_bind().engine)
    names = _Names(session)
    query = select(_resource.c.resource_key).where(_resource.c.deleted.is_(False))
    if resource_type:
        query = query.where(_resource.c.resource_type == resource_type)
    keys = list(session.execute(query.order_by(_resource.c.resource_key)).scalars())
    session.rollback()
    found = IndexCheck(resources=len(keys))
    doubted: list[int] = []
    for start in range(0, len(keys), CHUNK):
        differ, rows = _check_chunk(session, names, keys[start : start + CHUNK], zone)
        found.rows += rows
        doubted += (d.resource_key for d in differ)
    for start in range(0, len(doubted), CHUNK):
        differ, _ = _check_chunk(session, names, doubted[start : start + CHUNK], zone)
        found.different += len(differ)
        for difference in differ:
            for item in difference.stored_only:
                found.by_param[_param_of(item)] += 1
        found.differences += differ[: max(0, keep - len(found.differences))]
    if resource_type is None:
        found.orphans = orphan_rows(session)
        session.rollback()
    return found


def _check_chunk(
    session: Session, names: _Names, keys: list[int], zone: tzinfo
) -> tuple[list[Difference], int]:
    """The resources of ``keys`` whose rows differ, and how many rows were stored (one
    transaction, rolled back)."""
    try:
        rows = session.execute(
            select(
                _resource.c.resource_key,
                _resource.c.resource_type,
                _resource.c.id,
                _resource.c.body,
            ).where(_resource.c.resource_key.in_(keys), _resource.c.deleted.is_(False))
        ).all()
        keys = [row.resource_key for row in rows]  # those still current
        if not keys:
            return [], 0
        names.refresh()
        stored = _named(session, names, keys)
        _delete_index_rows(session, keys)
        derived_rows = []
        for row in rows:
            values = index_values(row.body, zone)
            derived_rows.extend(_index_tuples(row.resource_type, row.resource_key, values))
        _insert_index_tuples(session, derived_rows)
        names.refresh()  # a parameter or system created for the derivation
        derived = _named(session, names, keys)
    finally:
        session.rollback()
    out = []
    for row in rows:
        mine, theirs = stored[row.resource_key], derived[row.resource_key]
        if mine != theirs:
            out.append(
                Difference(
                    row.resource_type,
                    row.id,
                    row.resource_key,
                    sorted((mine - theirs).elements(), key=repr),
                    sorted((theirs - mine).elements(), key=repr),
                )
            )
    return out, sum(sum(c.values()) for c in stored.values())


def _param_of(item: tuple[Any, ...]) -> tuple[Any, ...]:
    """The parameter a named row or element belongs to, for the summary."""
    if item[0] == "tok":
        return item[1][0]  # type: ignore[no-any-return]
    return item[1]  # type: ignore[no-any-return]


def describe(found: IndexCheck) -> Iterable[str]:
    """The check's lines for an operator (no values: they may name a patient)."""
    yield (
        f"{found.resources} resources, {found.rows} index rows and array elements compared;"
        f" {found.different} resources differ; {found.orphans} rows of no current resource"
    )
    for param, count in found.by_param.most_common(20):
        yield f"  stored rows not derived: {count} of {param}"
    for d in found.differences:
        yield (
            f"  {d.resource_type}/{d.resource_id} (key {d.resource_key}):"
            f" {len(d.stored_only)} rows only stored, {len(d.derived_only)} only derived"
        )

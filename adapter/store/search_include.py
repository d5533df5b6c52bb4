"""``_include`` and ``_revinclude``: the resources a page of matches refers to, or that
refer to it, read from the reference rows of search_index.

Only the page's own matches are followed (paging never brings another page's includes);
``:iterate`` follows the same parameter once more from what the first round brought in.
A resource is returned once: matches are never repeated as includes, and an include found
twice is listed once. At most ``MAX_INCLUDED`` are returned; the caller says so when the
limit cut the list.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import String, literal, or_, select, union
from sqlalchemy.orm import Session

from adapter.fhir.search_results import Include
from adapter.store.index_params import ParamIds, named_rows, rows_in
from adapter.store.keys import keys_in
from adapter.store.models import Resource, SearchIndex
from adapter.store.search_terms import refs_any, search_terms, targets_of
from adapter.store.visibility import Visibility, visible

_r = Resource.__table__
_si = SearchIndex.__table__
MAX_INCLUDED = 1000
_CHUNK = 500  # keys per IN list: well under every database's bound-parameter limit

Key = tuple[str, str]  # (type, id)


def included(
    session: Session,
    matches: Sequence[dict[str, Any]],
    includes: Sequence[Include],
    *,
    scope: Visibility | None = None,
) -> tuple[list[dict[str, Any]], bool]:
    """The included resources of a page (in a stable order) and whether the limit cut them;
    with ``scope``, only what it may read (and only that is followed by ``:iterate``)."""
    seen: set[Key] = {(b["resourceType"], b["id"]) for b in matches}
    found: dict[Key, None] = {}
    frontier: list[Key] = list(seen)
    ids = ParamIds(session)  # the parameters' ids, as constants in the statements
    for level in (1, 2):
        wanted = [i for i in includes if level == 1 or i.iterate]
        if not wanted or not frontier:
            break
        new: dict[Key, None] = {}
        for include in wanted:
            for key in _follow(session, ids, include, frontier):
                if key not in seen:
                    seen.add(key)
                    new[key] = None
        if scope is not None:
            new = dict.fromkeys(_readable(session, list(new), scope))
        found.update(new)
        frontier = list(new)
    keys = list(found)
    cut = len(keys) > MAX_INCLUDED
    return _bodies(session, keys[:MAX_INCLUDED]), cut


def _follow(session: Session, ids: ParamIds, include: Include, frontier: list[Key]) -> list[Key]:
    sources = [k for k in frontier if k[0] == include.source]
    if not include.reverse and not sources:
        return []
    # the include's parameter, or every reference parameter of the source type
    names = named_rows(include.source, include.param) if include.param is not None else None
    pids = ids.of(include.source, names, "reference")
    rows = rows_in(_si, pids, "reference")
    out: list[Key] = []
    if include.reverse:
        for chunk in _chunks(frontier):
            # the frontier named by its keys (decision 0080) and by text, for the rows that
            # keep a reference as text
            named = [k for k in chunk if include.target in (None, k[0])]
            if not named:
                continue
            t = _r.alias()
            targets = select(t.c.resource_key).where(keys_in(t.c.resource_type, t.c.id, named))
            texts = [f"{t}/{i}" for t, i in named]
            queries = [
                select(_r.c.resource_type, _r.c.id)
                .select_from(_si.join(_r, _r.c.resource_key == _si.c.resource_key))
                .where(rows, referring)
                for referring in (_si.c.target_key.in_(targets), _si.c.reference.in_(texts))
            ]
            if ids.terms:  # PostgreSQL: the arrays naming a target, by GIN (decision 0088)
                # the targets' keys read first: constants of one GIN probe
                found = sorted(session.execute(targets).scalars())
                terms = search_terms.alias()
                queries[0] = (
                    select(_r.c.resource_type, _r.c.id)
                    .select_from(terms.join(_r, _r.c.resource_key == terms.c.resource_key))
                    .where(refs_any(terms, pids, found))
                )
            for query in queries:
                out.extend((t, i) for t, i in session.execute(query.distinct()))
        return sorted(set(out))
    target = _r.alias()
    for chunk in _chunks([i for _, i in sources]):
        source_keys = select(_r.c.resource_key).where(
            _r.c.resource_type == include.source, _r.c.id.in_(chunk)
        )
        query = (
            select(_si.c.reference, target.c.resource_type, target.c.id)
            .select_from(_si.outerjoin(target, target.c.resource_key == _si.c.target_key))
            .where(
                rows,
                _si.c.resource_key.in_(source_keys),
                or_(_si.c.reference.is_not(None), _si.c.target_key.is_not(None)),
            )
        )
        statement: Any = query.distinct()
        if ids.terms:  # PostgreSQL: and the targets the sources' arrays name (0088)
            named = targets_of(source_keys, pids).subquery()
            keyed = select(literal(None, String()), target.c.resource_type, target.c.id).join_from(
                named, target, target.c.resource_key == named.c.target_key
            )
            statement = union(query, keyed)
        for reference, ttype, tid in session.execute(statement):
            if ttype is not None:  # named by its key
                rtype, rid = ttype, tid
            else:
                rtype, _, rid = reference.partition("/")
            if rid and "/" not in rid and (include.target in (None, rtype)):
                out.append((rtype, rid))
    return sorted(set(out))


def _readable(session: Session, keys: list[Key], scope: Visibility) -> list[Key]:
    found: set[Key] = set()
    for chunk in _chunks(keys):
        query = select(_r.c.resource_type, _r.c.id).where(
            keys_in(_r.c.resource_type, _r.c.id, chunk), visible(scope, _r)
        )
        found.update((t, i) for t, i in session.execute(query))
    return [k for k in keys if k in found]


def _bodies(session: Session, keys: list[Key]) -> list[dict[str, Any]]:
    by_key: dict[Key, dict[str, Any]] = {}
    for chunk in _chunks(keys):
        query = select(_r.c.resource_type, _r.c.id, _r.c.body).where(
            keys_in(_r.c.resource_type, _r.c.id, chunk), _r.c.deleted.is_(False)
        )
        for rtype, rid, body in session.execute(query):
            by_key[(rtype, rid)] = body
    return [by_key[k] for k in keys if k in by_key]


def _chunks(items: list[Any]) -> Iterable[list[Any]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]

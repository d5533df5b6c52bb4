"""PostgreSQL: a whole type sorted first by a token, read by walking the dictionary's codes
(decision 0103, item 6; any further sort keys since decision 0108).

The parameter's codes in the sort's order from the dictionary (``GROUP BY code``), each
code's resources by one GIN probe in a LATERAL subquery fenced by ``OFFSET 0`` (its own
first ``offset + count`` in the order of the other sort keys, then newest change and id),
a resource placed by a code when its array holds no id of a code that sorts before it
(``better``, an array of the dictionary's ids computed once per code: an array operator on
the row read, not a probe per resource). The page stops after the codes that fill it, as
the read of ``ix_search_index_token`` in code order did before the dictionary. A further
key (``_sort=code,-date``) is computed for the resources of the codes read, not for the
whole type: before 0108 such a sort took the generic path, every resource of the type
placed through ``token_rows()`` (seconds at 200,000 Observations).

Only where no row of the parameter that stays a row has a code (``token_walk_applies``,
read with the search's other pre-reads): such a row (a code cut to a key, rare) would
place its resource too; then, and for a sort with a criterion, the generic path.

A name (``family``, ``given``, ``name``: string values in the dictionary, decision 0117)
walks its values the same way, grouped and ordered by ``value_norm`` (the column the
generic sort reads; both columns take the database's collation), with or without a
criterion (``_value_column``).

A search whose one criterion's matches the pre-read listed by key (``keys_sorted``,
decision 0146) sorts those resources directly: each one's value read once from its array,
ordered in SQL, where the walk read the criterion's resources again for every value it
walked (``name=王&_sort=given``: 404,203 buffers).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    Select,
    any_,
    bindparam,
    cast,
    exists,
    func,
    literal_column,
    not_,
    select,
    true,
)
from sqlalchemy import Text as SqlText
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from adapter.fhir.search_results import SortKey
from adapter.store.index_params import Ids
from adapter.store.models import SEARCH_TERMS, SEARCH_TOKEN, Resource
from adapter.store.search_order import _ordered, _terms, _terms_order
from adapter.store.search_tokens import STRING_SYSTEM, toks_any

_r = Resource.__table__
_INTS = ARRAY(Integer())
_KEYS = ARRAY(BigInteger())


def _value_column(table: Any, kind: str) -> Any:
    """The dictionary column a sort by ``kind`` orders: a token's code, a string's
    normalised text (the column ``search_order`` sorts a string row by)."""
    return table.c.value_norm if kind == "string" else table.c.code


def _values(table: Any, kind: str) -> ColumnElement[bool]:
    """The dictionary's values of ``kind``: a string parameter's without its presence
    marker (``VALUED_SYSTEM``, decision 0117)."""
    return table.c.system_id == STRING_SYSTEM if kind == "string" else true()


def token_walk(
    rtype: str, sort: tuple[SortKey, ...], keyed: tuple[Ids, ...], limit: int, offset: int
) -> Select[Any]:
    """The page of ``rtype``'s resources with a value of the token sort key ``sort[0]``
    (its parameter rows' ids ``keyed[0]``), sorted by it (the lowest code ascending, the
    highest descending), then by the other keys, newest change and id, as
    ``search_order`` sorts (module docstring)."""
    descending = sort[0].descending
    kind = sort[0].param.type
    first = offset + limit
    d, b = SEARCH_TOKEN.alias("d"), SEARCH_TOKEN.alias("b")
    d_value, b_value = _value_column(d, kind), _value_column(b, kind)
    better_code = b_value > d_value if descending else b_value < d_value
    better = (
        select(func.coalesce(func.array_agg(b.c.token_id), cast(literal_column("'{}'"), _INTS)))
        .where(b.c.param_id == any_(_ids(keyed[0])), _values(b, kind), better_code)
        .scalar_subquery()
    )
    code_order = d_value.desc() if descending else d_value.asc()
    codes = (
        select(
            d_value.label("code"), func.array_agg(d.c.token_id).label("ids"), better.label("better")
        )
        .where(d.c.param_id == any_(_ids(keyed[0])), _values(d, kind))
        .group_by(d_value)
        .order_by(code_order)
        .subquery("walk_codes")
    )
    t, w = SEARCH_TERMS.alias("walk_terms"), _r.alias("walk_r")
    terms = _terms(sort[1:], w, keyed[1:])  # the other keys, then last change and id
    then = [value.label(f"walk_then_{n}") for n, (value, _, _) in enumerate(terms)]
    page = (
        select(w.c.resource_key, *then)
        .select_from(t.join(w, w.c.resource_key == t.c.resource_key))
        .where(
            t.c.toks.op("&&", is_comparison=True)(codes.c.ids),
            not_(t.c.toks.op("&&", is_comparison=True)(codes.c.better)),
            w.c.resource_type == rtype,
            w.c.deleted.is_(False),
        )
        .order_by(*_terms_order(terms))
        .limit(first)
        .offset(0)
        .lateral("walk_page")
    )
    code = codes.c.code.desc() if descending else codes.c.code.asc()
    ordered = [
        _ordered(page.c[f"walk_then_{n}"], desc, last) for n, (_, desc, last) in enumerate(terms)
    ]
    walked = (
        select(
            codes.c.code,
            page.c.resource_key,
            *(page.c[f"walk_then_{n}"] for n in range(len(terms))),
        )
        .select_from(codes.join(page, true()))
        .order_by(code, *ordered)
        .limit(first)
        .subquery("walk")
    )
    final = [
        _ordered(walked.c[f"walk_then_{n}"], desc, last) for n, (_, desc, last) in enumerate(terms)
    ]
    return (
        select(_r.c.body)
        .select_from(walked.join(_r, _r.c.resource_key == walked.c.resource_key))
        .order_by(walked.c.code.desc() if descending else walked.c.code.asc(), *final)
        .limit(limit)
        .offset(offset)
    )


def _ids(ids: Ids) -> Any:
    return bindparam(None, list(ids), type_=_INTS, unique=True)


def walk_codes(
    session: Session, pids: Ids, descending: bool, kind: str = "token", first: int | None = None
) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """The codes (a string's normalised texts) of the parameter rows ``pids`` in the sort's
    order (the database's collation), each as (its dictionary ids, the ids of every code
    that sorts before it): one small statement on the dictionary. ``first``: only the
    first codes (a name has thousands of values; each code's ``better`` holds the ids of
    all before it)."""
    d = SEARCH_TOKEN.alias("d")
    value = _value_column(d, kind)
    query = (
        select(func.array_agg(d.c.token_id))
        .where(d.c.param_id == any_(_ids(pids)), _values(d, kind))
        .group_by(value)
        .order_by(value.desc() if descending else value.asc())
        .limit(first)
    )
    codes: list[tuple[tuple[int, ...], tuple[int, ...]]] = []
    before: list[int] = []
    for ids in session.execute(query).scalars():
        codes.append((tuple(sorted(ids)), tuple(sorted(before))))
        before.extend(ids)
    return codes


def placed_by(r: Any, ids: Sequence[int], better: Sequence[int]) -> ColumnElement[bool]:
    """``r``'s resource is placed by the code whose dictionary ids are ``ids``: its array
    holds one of them and none of a code that sorts before it (``better``); a primary-key
    probe of its ``search_terms`` row, or a GIN scan, as the planner weighs the ids."""
    t = SEARCH_TERMS.alias("walk_placed")
    return exists(
        select(t.c.resource_key).where(
            t.c.resource_key == r.c.resource_key, toks_any(t, ids), not_(toks_any(t, better))
        )
    )


@lru_cache(maxsize=256)
def keys_sorted(rtype: str, sort: tuple[SortKey, ...], keyed: tuple[Ids, ...]) -> Select[Any]:
    """The page of the live ``rtype`` resources whose keys are bound as ``sorted_keys`` (a
    criterion's matches as the pre-read listed them, the array's text) with a value of the
    name sort key ``sort[0]`` (its parameter rows' ids ``keyed[0]``), sorted as the walk
    sorts them (decision 0146): each resource's lowest normalised text ascending, highest
    descending (the texts of its array's ids of the parameter, one hash join with the
    parameter's dictionary values), then the other keys, newest change and id;
    ``sorted_limit`` of them from ``sorted_offset``. The values are ordered first and each
    resource read by primary key in that order until the page is full (an incremental
    sort: only the page's resources and the ties of its last value are read). Every array
    of the keys is read once, where the walk read them once per value walked
    (``name=王&_sort=given``: 12,021 resources, five values walked, 74,897 buffers each).
    Built once per shape (its keys, limit and offset bound at execution)."""
    key = sort[0]
    kind = key.param.type
    bound = bindparam("sorted_keys", type_=SqlText())
    listed = select(func.unnest(cast(bound, _KEYS)).label("key")).subquery("sorted_keys")
    t, d = SEARCH_TERMS.alias("sorted_terms"), SEARCH_TOKEN.alias("sorted_values")
    toks = (
        select(t.c.resource_key, func.unnest(t.c.toks).label("tok"))
        .select_from(t.join(listed, listed.c.key == t.c.resource_key))
        .subquery("sorted_toks")
    )
    pick = func.max if key.descending else func.min
    value = pick(_value_column(d, kind))
    values = (
        select(toks.c.resource_key, value.label("sort_value"))
        .select_from(toks.join(d, d.c.token_id == toks.c.tok))
        .where(d.c.param_id == any_(_ids(keyed[0])), _values(d, kind))
        .group_by(toks.c.resource_key)
        .order_by(value.desc() if key.descending else value.asc())
        .subquery("sorted_by")
    )
    terms = _terms(sort[1:], _r, keyed[1:])  # the other keys, then last change and id
    then = [term.label(f"sorted_then_{n}") for n, (term, _, _) in enumerate(terms)]
    own = (
        select(_r.c.resource_key, *then)
        .where(
            _r.c.resource_key == values.c.resource_key,
            _r.c.resource_type == rtype,
            _r.c.deleted.is_(False),
        )
        .offset(0)  # a primary-key probe per value read, in the values' order
        .lateral("sorted_page")
    )
    ordered = [
        _ordered(own.c[f"sorted_then_{n}"], desc, last) for n, (_, desc, last) in enumerate(terms)
    ]
    sort_value = values.c.sort_value
    page = (
        select(
            own.c.resource_key, sort_value, *(own.c[f"sorted_then_{n}"] for n in range(len(terms)))
        )
        .select_from(values.join(own, true()))
        .order_by(sort_value.desc() if key.descending else sort_value.asc(), *ordered)
        .limit(bindparam("sorted_limit", type_=Integer()))
        .offset(bindparam("sorted_offset", type_=Integer()))
        .subquery("sorted")
    )
    final = [
        _ordered(page.c[f"sorted_then_{n}"], desc, last) for n, (_, desc, last) in enumerate(terms)
    ]
    value_order = page.c.sort_value.desc() if key.descending else page.c.sort_value.asc()
    return (  # the page's bodies (their stamps read from the resource row, decision 0128)
        select(_r.c.body)
        .select_from(page.join(_r, _r.c.resource_key == page.c.resource_key))
        .order_by(value_order, *final)
    )

"""Which ``search_index`` rows hold a search parameter's values (decisions 0042, 0071).

A parameter whose values include another's (``subject`` and ``patient``, ``combo-code``
and ``code``) keeps rows only for the values the other has not: a search of it reads the
rows of both (``SearchParam.rows_of``, set in adapter/fhir/search_params.py).

A row names its resource type, parameter row name and kind by ``param_id``, a row of
``search_param`` (decision 0071). No process state is involved in reading them, and an
unknown parameter matches nothing:

* A search (adapter/store/search*.py) reads the ids of its types from ``search_param``
  through its own session when it builds its statements (``ParamIds``, one small SELECT
  per type) and puts them in the statement as constants (``rows_in``): PostgreSQL then
  estimates the rows of that parameter from the statistics of the value, where a
  subquery's id got a generic estimate and a bad plan for a selective ``:not``
  (decision 0073).
* Other readers (recognition, console, ``$everything``) compare ``param_id`` with a
  subquery of ``search_param`` (``rows_of``).
"""

from __future__ import annotations

from collections.abc import Hashable
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    ColumnElement,
    FromClause,
    Integer,
    Select,
    and_,
    bindparam,
    false,
    literal_column,
    select,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.functions import FunctionElement

from adapter.fhir.search_params import RESOURCES, SearchParam
from adapter.store.models import KINDS, Resource
from adapter.store.models import SearchParam as SearchParamRow
from adapter.store.resource_keys import target_keys

if TYPE_CHECKING:
    from adapter.store.search_preread import ManyIds, PreRead
    from adapter.store.search_preshape import Shaped

_sp = SearchParamRow.__table__
_r = Resource.__table__


def row_params(rtype: str | None, param: SearchParam, suffix: str = "") -> tuple[str, ...]:
    """The row names of ``param`` in ``rtype`` (its own definition there: a chain's inner
    parameter is the first target type's), each with ``suffix`` (``:of-type``)."""
    search = RESOURCES.get(rtype) if rtype else None
    own = search.params.get(param.name, param) if search is not None else param
    return tuple(name + suffix for name in own.row_params)


def named_rows(rtype: str, name: str) -> tuple[str, ...]:
    """The row names of the parameter ``name`` of ``rtype`` (itself when unknown)."""
    search = RESOURCES.get(rtype)
    param = search.params.get(name) if search is not None else None
    return param.row_params if param is not None else (name,)


@lru_cache(maxsize=1024)
def param_ids(rtype: str | None, names: tuple[str, ...] | None, kind: str) -> Select[Any]:
    """``SELECT param_id FROM search_param``: of ``rtype`` (any type when None), the row
    names ``names`` (any when None) and ``kind`` (a statement is immutable: built once)."""
    query = select(_sp.c.param_id).where(_sp.c.kind == KINDS[kind])
    if rtype is not None:
        query = query.where(_sp.c.resource_type == rtype)
    if names is not None:
        query = query.where(_sp.c.param == names[0] if len(names) == 1 else _sp.c.param.in_(names))
    return query


def kind_is(si: FromClause, kind: str) -> ColumnElement[bool]:
    """``kind = n`` as a constant in the statement: the planner then matches the partial
    index of that kind (a bound parameter would not match its predicate)."""
    return si.c.kind == literal_column(str(KINDS[kind]))


def rows_of(
    si: FromClause, rtype: str | None, names: tuple[str, ...] | None, kind: str
) -> ColumnElement[bool]:
    """The rows of ``si`` (an alias of search_index) of the parameter rows ``names`` (all
    of the kind when None) of ``rtype``, and of ``kind``. ``rtype`` None: of any type, for
    a probe that names its resource by key (a system-level search, a sort's correlated
    value). One type and one name is one id, compared with a scalar subquery (evaluated
    once, before the index is probed: SQLite's constant subquery, PostgreSQL's InitPlan)."""
    ids = param_ids(rtype, names, kind)
    if rtype is not None and names is not None and len(names) == 1:
        return and_(si.c.param_id == ids.scalar_subquery(), kind_is(si, kind))
    return and_(si.c.param_id.in_(ids), kind_is(si, kind))


Ids = tuple[int, ...]


class ParamIds:
    """The ``param_id``s of ``search_param`` as one search reads them through its session:
    each resource type's rows once (one SELECT), all types once for a probe of any type.
    Never shared between searches (no process cache: a triple created since is read by the
    next search)."""

    def __init__(self, session: Session) -> None:
        self._session = session
        # PostgreSQL keeps references named by key as arrays (search_terms, decision 0088)
        self.terms = session.get_bind().dialect.name == "postgresql"
        self._rows: dict[tuple[str, str, int], int] = {}
        self._types: set[str] = set()
        self._all = False
        # answers read ahead in one statement (``preread``, decision 0108), by the caller's key
        self._tokens: dict[Hashable, tuple[Ids | ManyIds, bool]] = {}
        self._targets: dict[Hashable, Ids] = {}
        self._walks: dict[Hashable, bool] = {}
        self._counted: dict[Hashable, int] = {}
        self._arrays: dict[Hashable, Any] = {}  # search_preread.Arrays, by the caller's key
        self._deleted: dict[str, bool] = {}

    def preread(self, pre: PreRead | Shaped) -> None:
        """Send the search's one pre-read statement (adapter/store/search_preread.py) and
        keep its answers: the calls below then read nothing for what it asked."""
        found = pre.run(self._session)
        for t, name, kind, pid in found.params:
            self._rows[(t, name, kind)] = pid
        self._types.update(found.types)
        self._tokens.update(found.tokens)
        self._targets.update(found.targets)
        self._walks.update(found.walks)
        self._counted.update(found.rows)
        self._arrays.update(found.arrays)
        self._deleted.update(found.deleted)

    def _load(self, rtype: str | None) -> None:
        if self._all or rtype in self._types:
            return
        query = select(_sp.c.resource_type, _sp.c.param, _sp.c.kind, _sp.c.param_id)
        if rtype is not None:
            query = query.where(_sp.c.resource_type == rtype)
        for t, name, kind, pid in self._session.execute(query):
            self._rows[(t, name, kind)] = pid
        if rtype is None:
            self._all = True
        else:
            self._types.add(rtype)

    def tokens(
        self, pids: Ids, condition: Any, rows: Any = None, key: Hashable = None, kind: str = "token"
    ) -> tuple[Ids | ManyIds, bool]:
        """The dictionary ids of the token parameters ``pids`` whose values meet
        ``condition``, and whether a row of ``rows`` does (PostgreSQL, decision 0103;
        ``search_tokens.matching_ids``), read through the search's session; ``key``: the
        caller's name for the question, answered from the pre-read (or read once). ``kind``
        "string": the string values of the dictionary (decision 0114); a string criterion's
        ids from the pre-read, when more than ``MANY_IDS``, are ``ManyIds``: their text,
        not parsed (decision 0145)."""
        from adapter.store.search_tokens import matching_ids

        if key is not None and key in self._tokens:
            return self._tokens[key]
        found = matching_ids(self._session, pids, condition, rows, kind)
        if key is not None:
            self._tokens[key] = found
        return found

    def tokens_read(self, key: Hashable) -> tuple[Ids | ManyIds, bool] | None:
        """``tokens``' answer for ``key`` when read already (pre-read or asked), else None."""
        return self._tokens.get(key)

    def targets(self, references: tuple[str, ...], id_only: str | None = None) -> Ids:
        """``targets`` read through the search's session (or the pre-read)."""
        key = (references, id_only)
        if key not in self._targets:
            self._targets[key] = targets(self._session, references, id_only)
        return self._targets[key]

    def walk_applies(self, key: Hashable, pids: Ids, kind: str = "token") -> bool:
        """``search_tokens.token_walk_applies`` for the sort parameter rows ``pids`` of
        ``kind`` (``key``: their names), from the pre-read when it asked."""
        from adapter.store.search_tokens import token_walk_applies

        if key not in self._walks:
            self._walks[key] = token_walk_applies(self._session, pids, kind)
        return self._walks[key]

    def rows_counted(self, key: Hashable, rows: Any, arrays: bool = False) -> int:
        """How many rows ``rows`` selects, counted up to ``search_preread.FEW_ROWS`` + 1,
        from the pre-read when it asked (``key``), else read once. ``arrays``: ``rows``
        are dictionary ids, the arrays holding them counted (``counted_arrays``)."""
        from adapter.store.search_preread import counted, counted_arrays

        if key not in self._counted:
            count = counted_arrays(rows) if arrays else counted(rows)
            self._counted[key] = int(self._session.execute(select(count)).scalar_one())
        return self._counted[key]

    def arrays(self, key: Hashable) -> Any:
        """What the pre-read found of a string criterion's arrays (``search_preread.Arrays``),
        None when it did not ask (decision 0127)."""
        return self._arrays.get(key)

    def deleted(self, rtype: str) -> bool | None:
        """Whether ``rtype`` has a resource marked deleted, None when the pre-read did not
        ask."""
        return self._deleted.get(rtype)

    def of(self, rtype: str | None, names: tuple[str, ...] | None, kind: str) -> Ids:
        """The ids of the row names ``names`` (any when None) of ``rtype`` (any type when
        None) and ``kind``, sorted; empty when the store has none (matches nothing)."""
        self._load(rtype)
        number = KINDS[kind]
        return tuple(
            sorted(
                pid
                for (t, name, k), pid in self._rows.items()
                if k == number
                and (rtype is None or t == rtype)
                and (names is None or name in names)
            )
        )


def targets(session: Session, references: tuple[str, ...], id_only: str | None = None) -> Ids:
    """The ``resource_key``s of the resources of the store that the searched references
    name (``Type/id``; ``id_only``: that id of any indexed type), sorted: the
    ``target_key`` of their index rows (decision 0080). Read by the search itself and put
    in its statement as constants, as the parameter ids are."""
    if id_only is not None:
        query = select(_r.c.resource_key).where(
            _r.c.resource_type.in_(sorted(RESOURCES)), _r.c.id == id_only
        )
        return tuple(sorted(session.execute(query).scalars()))
    return tuple(sorted(set(target_keys(session, set(references)).values())))


def rows_in(
    si: FromClause, ids: Ids, kind: str, *, of_resource: bool = False
) -> ColumnElement[bool]:
    """The rows of ``si`` whose ``param_id`` is one of ``ids`` (constants in the statement
    sent, the compiled statement is still shared: ``literal_execute``) and of ``kind``;
    nothing when ``ids`` is empty. ``of_resource``: a probe correlated on one resource's
    key, which SQLite must read through the table's key (``ByKey``)."""
    if not ids:
        return false()
    param_id = ByKey(si.c.param_id) if of_resource else si.c.param_id
    if len(ids) == 1:
        same = param_id == bindparam(None, ids[0], literal_execute=True)
    else:
        same = param_id.in_(bindparam(None, list(ids), expanding=True, literal_execute=True))
    return and_(same, kind_is(si, kind))


class ByKey(FunctionElement[int]):
    """``param_id`` in a probe of one resource's rows. SQLite: ``+param_id``, a term no
    index can serve, so that the probe reads the resource's rows through the table's key
    (resource_key, kind, row_id) instead of scanning a per-kind index, which starts with
    ``param_id`` and covers the probe: without statistics SQLite prefers a covering index,
    and the probe then reads every row of the parameter for each resource (decision 0085).
    Other databases: the column."""

    type = Integer()
    inherit_cache = True


@compiles(ByKey)
def _by_key(element: ByKey, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.clauses, **kw))


@compiles(ByKey, "sqlite")
def _by_key_sqlite(element: ByKey, compiler: Any, **kw: Any) -> str:
    return "+" + str(compiler.process(element.clauses, **kw))

"""Which ``search_index`` rows hold a search parameter's values (decisions 0042, 0071).

A parameter whose values include another's (``subject`` and ``patient``, ``combo-code``
and ``code``) keeps rows only for the values the other has not: a search of it reads the
rows of both (``SearchParam.rows_of``, set in adapter/fhir/search_params.py).

A row names its resource type, parameter row name and kind by ``param_id``, a row of
``search_param`` (decision 0071). Every condition on them goes through ``rows_of``, which
compares ``param_id`` with a subquery of ``search_param``: no process state is involved,
and an unknown parameter matches nothing.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, FromClause, Select, and_, literal_column, select

from adapter.fhir.search_params import RESOURCES, SearchParam
from adapter.store.models import KINDS
from adapter.store.models import SearchParam as SearchParamRow

_sp = SearchParamRow.__table__


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


def param_ids(rtype: str | None, names: tuple[str, ...] | None, kind: str) -> Select[Any]:
    """``SELECT param_id FROM search_param``: of ``rtype`` (any type when None), the row
    names ``names`` (any when None) and ``kind``."""
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

"""Which ``search_index.param`` rows hold a search parameter's values (decision 0042).

A parameter whose values include another's (``subject`` and ``patient``, ``combo-code``
and ``code``) keeps rows only for the values the other has not: a search of it reads the
rows of both (``SearchParam.rows_of``, set in adapter/fhir/search_params.py). Every
condition on the index row's parameter goes through ``param_in``.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, FromClause

from adapter.fhir.search_params import RESOURCES, SearchParam


def row_params(rtype: str | None, param: SearchParam, suffix: str = "") -> tuple[str, ...]:
    """The row names of ``param`` in ``rtype`` (its own definition there: a chain's inner
    parameter is the first target type's), each with ``suffix`` (``:of-type``)."""
    search = RESOURCES.get(rtype) if rtype else None
    own = search.params.get(param.name, param) if search is not None else param
    return tuple(name + suffix for name in own.row_params)


def param_in(si: FromClause, names: tuple[str, ...]) -> ColumnElement[bool]:
    """``param = name`` for one name, ``param IN (...)`` for several."""
    if len(names) == 1:
        return si.c.param == names[0]
    return si.c.param.in_(names)


def named_rows(rtype: str, name: str) -> tuple[str, ...]:
    """The row names of the parameter ``name`` of ``rtype`` (itself when unknown)."""
    search = RESOURCES.get(rtype)
    param = search.params.get(name) if search is not None else None
    return param.row_params if param is not None else (name,)

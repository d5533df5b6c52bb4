"""``search_index`` as migration 0024 left it (before decision 0071 named a row's resource
type, parameter and kind by ``param_id``): the form the older migrations' tests write their
rows in, and read them back in after an upgrade to head."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    Float,
    Integer,
    String,
    Text,
    func,
    inspect,
    literal,
    select,
)

from adapter.store.models import KIND_NAMES, Resource, SearchIndex, SearchParam
from adapter.store.search_terms import reference_rows
from adapter.store.search_tokens import index_rows
from adapter.store.types import BigId, UTCDateTime


def columns_0024(*leave_out: str) -> list[Column[Any]]:
    """The columns of search_index at 0024, without ``leave_out``."""
    columns: list[Column[Any]] = [
        Column("row_id", BigId, primary_key=True),
        Column("resource_type", String()),
        Column("resource_key", BigId),
        Column("param", String()),
        Column("kind", String()),
        Column("system_id", Integer()),
        Column("code", Text()),
        Column("value", Text()),
        Column("value_norm", Text()),
        Column("value_date_start", UTCDateTime()),
        Column("value_date_end", UTCDateTime()),
        Column("value_number", Float()),
        Column("reference", Text()),
        Column("code_full", Text()),
        Column("value_norm_full", Text()),
        Column("reference_full", Text()),
    ]
    return [c for c in columns if c.name not in leave_out]


def _has_tokens(connection: Connection) -> bool:
    """Whether the store keeps token values as arrays (PostgreSQL since 0043)."""
    return "search_token" in inspect(connection).get_table_names()


def rows_0024(connection: Connection) -> list[dict[str, Any]]:
    """The index rows of a database at head, as 0024 held them (type, parameter and kind by
    name; a reference as its text, where head may name it by its target's key: decision
    0080), in (resource key, row id) order with the row ids numbered over the table in that
    order, as 0024 numbered them (on SQLite, from 0036 on, a row id is the row's number
    among its resource's rows: decision 0085)."""
    si, sp, r = SearchIndex.__table__, SearchParam.__table__, Resource.__table__.alias()
    if "search_terms" in inspect(connection).get_table_names():
        # PostgreSQL since 0037: the arrays as rows too (decisions 0088, 0103)
        si = index_rows() if _has_tokens(connection) else reference_rows()
    keep = [c for c in si.c if c.name not in ("param_id", "kind", "reference", "target_key")]
    query = select(*keep).join_from(si, sp, sp.c.param_id == si.c.param_id)
    if "target_key" in {c["name"] for c in inspect(connection).get_columns("search_index")}:
        named = func.coalesce(si.c.reference, r.c.resource_type + literal("/") + r.c.id)
        query = query.outerjoin(r, r.c.resource_key == si.c.target_key)
    else:  # before 0032 (0030 and down)
        named = si.c.reference
    query = query.add_columns(
        named.label("reference"), sp.c.resource_type, sp.c.param, sp.c.kind
    ).order_by(si.c.resource_key, si.c.row_id)
    out = []
    for row in connection.execute(query):
        values = dict(row._mapping)
        values["kind"] = KIND_NAMES[values["kind"]]
        out.extend(_of_type_rows(values))
    for number, values in enumerate(out, start=1):
        values["row_id"] = number
    return out


def _of_type_rows(values: dict[str, Any]) -> list[dict[str, Any]]:
    """A row as 0024 held it: an identifier's row carrying its type (since 0042, decision
    0098: ``value`` the type's code, ``value_number`` its system's id) as the identifier's
    row and its ``:of-type`` row after it."""
    if values["kind"] != "token" or values["value"] is None or values["param"].endswith(":of-type"):
        return [values]
    of_type = dict.fromkeys(values)
    number = values["value_number"]
    of_type.update(
        resource_type=values["resource_type"],
        resource_key=values["resource_key"],
        param=values["param"] + ":of-type",
        kind="token",
        system_id=None if number is None else int(number),
        code=values["value"],
        value=values["code_full"] or values["code"],
    )
    return [{**values, "value": None, "value_number": None}, of_type]

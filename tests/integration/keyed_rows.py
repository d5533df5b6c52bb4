"""Reading a store's reference rows as rows on every database: PostgreSQL keeps the ones
named by key as arrays since migration 0037 (decision 0088). The tests of earlier
migrations compare rows as search_index held them: ``keyed_rows`` takes a PostgreSQL store
to 0036 (the arrays back as rows) for the block, and back to head after it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Column, Connection, Engine, String, inspect

from adapter.store import migrate
from adapter.store.engine import downgrade
from adapter.store.models import Resource
from adapter.store.search_terms import rows_sql
from adapter.store.search_tokens import index_rows_sql


@contextmanager
def keyed_rows(engine: Engine) -> Iterator[None]:
    """Also SQLite's store, to 0040: its identifiers' types as ``:of-type`` rows again, as
    the earlier forms hold them (migration 0042, decision 0098)."""
    downgrade(engine, "0036" if engine.dialect.name == "postgresql" else "0040")
    try:
        yield
    finally:
        migrate(engine)


def resource_columns_before_0047(types: dict[str, Any] | None = None) -> list[Column[Any]]:
    """``resource``'s columns as a store below 0047 has them (inside ``keyed_rows``, and in
    the earlier forms): the facility's name ``facility_id``, not 0047's ``facility_key``
    (decision 0118); ``types`` gives a column another type (an earlier form's)."""
    types = types or {}
    return [
        Column("facility_id", String())
        if c.name == "facility_key"
        else Column(c.name, types.get(c.name, c.type))
        for c in Resource.__table__.columns
    ]


def as_compared(engine: Engine, rows: list[Any]) -> list[Any]:
    """``rows`` as a test of an earlier migration compares them: on PostgreSQL without
    ``row_id`` and in a stable order. A reference that becomes an element of its resource's
    array (0037) comes back from a downgrade after the resource's other rows: the order
    of a resource's rows is not kept for those, only the values."""
    if engine.dialect.name != "postgresql":
        return rows
    out = []
    for row in rows:
        if isinstance(row, dict):
            out.append({k: v for k, v in row.items() if k != "row_id"})
        else:
            out.append(row)
    return sorted(out, key=lambda r: repr(sorted(r.items()) if isinstance(r, dict) else r))


def index_sql(conn: Connection) -> str:
    """What to read search_index's rows from by SQL: the table, or on PostgreSQL since 0037
    the table and the arrays as rows (``search_terms.rows_sql``)."""
    tables = inspect(conn).get_table_names()
    if "search_token" in tables:  # since 0043: the token arrays too (decision 0103)
        return index_rows_sql()
    if "search_terms" in tables:
        return rows_sql()
    return "search_index"


# Since migration 0042 (decision 0098) an identifier's first type rides on its identifier's
# row (a token row's ``value`` and ``value_number``), where a store before it has an
# ``:of-type`` row; its downgrade writes them as rows again. The tests of earlier
# migrations compare the rows without the types (tests/integration/test_migration_0042.py
# compares the types of both forms): this condition on ``search_index`` (as ``s``) keeps
# every row but the ``:of-type`` ones, and ``UNTYPED_VALUE`` / ``UNTYPED_NUMBER`` read a
# token row's two columns as empty.
NOT_OF_TYPE = "s.param_id NOT IN (SELECT param_id FROM search_param WHERE param LIKE '%\\:of-type')"
UNTYPED_VALUE = "CASE WHEN s.kind = 1 THEN NULL ELSE s.value END AS value"
UNTYPED_NUMBER = "CASE WHEN s.kind = 1 THEN NULL ELSE s.value_number END AS value_number"


def untyped(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``rows`` (dictionaries with ``param`` and ``kind``) without the types: no
    ``:of-type`` row, a token row's ``value`` and ``value_number`` None (``NOT_OF_TYPE``)."""
    out = []
    for row in rows:
        if str(row.get("param", "")).endswith(":of-type"):
            continue
        if row.get("kind") in ("token", 1):
            row = {**row, "value": None, "value_number": None}
        out.append(row)
    return out

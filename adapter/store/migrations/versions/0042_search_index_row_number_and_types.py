"""The search index in fewer rows and bytes (decision 0098).

1. PostgreSQL: ``search_index.row_id`` is the row's number among its resource's rows, a
   ``smallint`` stored after ``kind``. A row's ``row_id`` only breaks a sort's tie between
   two rows of one resource (the sort's rivals compare the ids of rows of one resource and
   parameter, adapter/store/search_order.py). It was a ``bigint`` from a sequence and led
   the row: 8 bytes and a nextval per row. The store now numbers each resource's rows (0,
   1, ... in the order written; -1, -2, ... for a bulk batch's transient rows) as it has on
   SQLite since decision 0085, and the column sits next to ``kind``: the two take 4 bytes
   where they took 10. PostgreSQL keeps a table's column order, so the table is copied (as
   0038 copied the outbox): each resource's rows numbered in their old ``row_id`` order,
   the sequence dropped with the old table, the eight indexes made again as they were,
   then ``ANALYZE`` when it holds rows. Refused, nothing changed, if a resource has more
   rows than a smallint numbers (32,768). SQLite: its ``row_id`` is that number already.

2. Both databases: an identifier's type rides on its identifier's row. A token row of an
   identifier had a second row for each of its type's codings (``<name>:of-type``:
   ``system_id`` and ``code`` the type's, ``value`` the identifier's), 4.1 rows of 67 per
   lab message. Now the identifier's row carries its first type (``value`` the type's
   code, ``value_number`` the type system's id: two columns a token row left empty); a
   second type and a type's code cut to a key stay rows, and ``identifier:of-type`` reads
   both forms (adapter/store/search.py). Here, per resource, identifier row name and
   value, the first identifier row takes the first such ``:of-type`` row (``_FIRST_TYPES``),
   which is deleted; any row left is still read.

Downgrade (to 0040): the types written as ``:of-type`` rows again, each right after its
identifier's row as the code before writes them (the identifier rows' two columns
emptied; SQLite's rows numbered 0, 1, ... again). PostgreSQL: then the table copied back
into 0040's column order, the rows numbered over the table in (resource, row id) order
(each resource's rows keep their order, as 0037's downgrade numbers them) by a new
``search_index_row_id_seq``, which continues after them and is the column's default again.

Revision ID: 0042
Revises: 0040
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0042"
down_revision: str | Sequence[str] | None = "0040"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Plain names on purpose: a migration must not change when application code does.
_ROWS_MAX = 32768  # row_id 0 .. 32,767

# the columns after ``row_id`` (name, type), in 0040's order (target_key added by 0033)
_VALUES_0040 = (
    ("resource_key", "bigint NOT NULL"),
    ("value_date_start", "timestamp with time zone"),
    ("value_date_end", "timestamp with time zone"),
    ("value_number", "double precision"),
    ("param_id", "integer NOT NULL"),
    ("system_id", "integer"),
    ("kind", "smallint NOT NULL"),
    ("code", "text"),
    ("value", "text"),
    ("value_norm", "text"),
    ("reference", "text"),
    ("code_full", "text"),
    ("value_norm_full", "text"),
    ("reference_full", "text"),
    ("target_key", "bigint"),
)
_FIRST = (  # 8 bytes, then 4, then 2 (kind and the row's number), then the texts
    "resource_key", "value_date_start", "value_date_end", "value_number", "target_key",
    "param_id", "system_id", "kind", "row_id", "code", "value", "value_norm", "reference",
    "code_full", "value_norm_full", "reference_full",
)  # fmt: skip
_0042 = tuple(
    sorted((*_VALUES_0040, ("row_id", "smallint NOT NULL")), key=lambda c: _FIRST.index(c[0]))
)
_0040 = (("row_id", "bigint NOT NULL"), *_VALUES_0040)

_INDEXES = (
    "CREATE INDEX ix_search_index_resource ON search_index (resource_key)",
    "CREATE INDEX ix_search_index_token ON search_index"
    " (param_id, code, system_id, resource_key) WHERE kind = 1",
    "CREATE INDEX ix_search_index_uri ON search_index (param_id, code, resource_key)"
    " WHERE kind = 6",
    "CREATE INDEX ix_search_index_string ON search_index"
    " (param_id, value_norm text_pattern_ops, resource_key) WHERE kind = 2",
    "CREATE INDEX ix_search_index_date ON search_index"
    " (param_id, value_date_start, value_date_end, resource_key) WHERE kind = 3",
    "CREATE INDEX ix_search_index_date_end ON search_index"
    " (param_id, value_date_end, resource_key) WHERE kind = 3",
    "CREATE INDEX ix_search_index_quantity ON search_index"
    " (param_id, value_number, resource_key) WHERE kind = 5",
    "CREATE INDEX ix_search_index_reference ON search_index"
    " (param_id, reference, resource_key) WHERE kind = 4 AND reference IS NOT NULL",
)


def _copy(columns: tuple[tuple[str, str], ...], number: str) -> None:
    """search_index copied into a table with ``columns`` in that order, ``row_id`` given by
    ``number`` (an expression over the old table), the indexes made again."""
    names = ", ".join(name for name, _ in columns)
    values = ", ".join(number if name == "row_id" else name for name, _ in columns)
    typed = ",\n".join(f"{name} {kind}" for name, kind in columns)
    op.execute(f"CREATE TABLE search_index_copy (\n{typed}\n)")
    op.execute(
        f"INSERT INTO search_index_copy ({names}) SELECT {values} FROM search_index"
        " ORDER BY resource_key, row_id"
    )
    op.execute("DROP TABLE search_index")  # its indexes, and its sequence (OWNED BY)
    op.execute("ALTER TABLE search_index_copy RENAME TO search_index")
    for statement in _INDEXES:
        op.execute(statement)


# identifier:of-type (part 2 of the module docstring): per resource, identifier row name
# and identifier value, the first row of that value not carrying a type takes the first
# ``:of-type`` row of that value whose code is whole (the rows' order aside: which of two
# rows of one value carries a type changes no answer, the search compares the value only)
_FIRST_TYPES = """
CREATE TEMP TABLE typed_0042 AS
SELECT i.resource_key, i.row_id, r.row_id AS of_type_row, r.code AS type_code,
       r.system_id AS type_system
FROM (
    SELECT s.resource_key, t.param_id AS of_type_param, coalesce(s.code_full, s.code) AS v,
           min(s.row_id) AS row_id
    FROM search_index s
    JOIN search_param b ON b.param_id = s.param_id AND b.kind = 1
    JOIN search_param t ON t.kind = 1 AND t.resource_type = b.resource_type
                       AND t.param = b.param || '\\:of-type'
    WHERE s.kind = 1 AND s.value IS NULL AND s.value_number IS NULL
    GROUP BY s.resource_key, t.param_id, coalesce(s.code_full, s.code)
) i
JOIN (
    SELECT resource_key, param_id, value, min(row_id) AS row_id FROM search_index
    WHERE kind = 1 AND value IS NOT NULL AND code_full IS NULL
    GROUP BY resource_key, param_id, value
) f ON f.resource_key = i.resource_key AND f.param_id = i.of_type_param AND f.value = i.v
JOIN search_index r ON r.resource_key = f.resource_key AND r.kind = 1 AND r.row_id = f.row_id
"""
# a token row of a name without ``:of-type`` has ``value`` only when it carries a type
_CARRIED = (
    "s.kind = 1 AND s.value IS NOT NULL AND s.param_id IN (SELECT param_id FROM search_param"
    " WHERE kind = 1 AND param NOT LIKE '%\\:of-type')"
)


def _types_on_identifier_rows() -> None:
    """Each identifier's first ``:of-type`` row folded into its identifier's row:
    ``value`` its type's code, ``value_number`` its type's system id; the row deleted."""
    op.execute(_FIRST_TYPES)
    op.execute("CREATE INDEX typed_0042_row ON typed_0042 (resource_key, row_id)")
    op.execute("CREATE INDEX typed_0042_of_type ON typed_0042 (resource_key, of_type_row)")
    op.execute(
        "UPDATE search_index SET value = t.type_code, value_number = t.type_system"
        " FROM typed_0042 t WHERE search_index.kind = 1"
        " AND search_index.resource_key = t.resource_key AND search_index.row_id = t.row_id"
    )
    op.execute(
        "DELETE FROM search_index WHERE kind = 1 AND EXISTS (SELECT 1 FROM typed_0042 t"
        " WHERE t.resource_key = search_index.resource_key"
        " AND t.of_type_row = search_index.row_id)"
    )
    op.execute("DROP TABLE typed_0042")


def _types_as_rows(sqlite: bool) -> None:
    """The types identifier rows carry written as ``:of-type`` rows again, each right after
    its identifier's row as the code before writes them: on SQLite the rows' numbers
    doubled first (the ``:of-type`` row takes the odd number after its identifier's), then
    numbered 0, 1, ... again; on PostgreSQL it takes its identifier's number and the copy
    (``downgrade``) numbers it after that row."""
    op.execute(
        "INSERT INTO search_param (resource_type, param, kind)"
        " SELECT DISTINCT b.resource_type, b.param || '\\:of-type', 1"
        f" FROM search_index s JOIN search_param b ON b.param_id = s.param_id WHERE {_CARRIED}"
        " AND NOT EXISTS (SELECT 1 FROM search_param t WHERE t.kind = 1"
        " AND t.resource_type = b.resource_type AND t.param = b.param || '\\:of-type')"
    )
    if sqlite:  # n -> -1 - 2n -> 2n: no number taken twice on the way (the table's key)
        op.execute("UPDATE search_index SET row_id = -1 - 2 * row_id")
        op.execute("UPDATE search_index SET row_id = -1 - row_id")
    op.execute(
        "INSERT INTO search_index (row_id, resource_key, param_id, kind, system_id, code, value)"
        f" SELECT s.row_id{' + 1' if sqlite else ''}, s.resource_key, t.param_id, 1,"
        " CAST(s.value_number AS integer), s.value, coalesce(s.code_full, s.code)"
        " FROM search_index s JOIN search_param b ON b.param_id = s.param_id"
        " JOIN search_param t ON t.kind = 1 AND t.resource_type = b.resource_type"
        f" AND t.param = b.param || '\\:of-type' WHERE {_CARRIED}"
        " ORDER BY s.resource_key, s.row_id"
    )
    op.execute(
        "UPDATE search_index SET value = NULL, value_number = NULL WHERE kind = 1"
        " AND value IS NOT NULL AND param_id IN (SELECT param_id FROM search_param"
        " WHERE kind = 1 AND param NOT LIKE '%\\:of-type')"
    )
    if sqlite:
        _sqlite_numbered()


def _sqlite_numbered() -> None:
    """SQLite: each resource's rows numbered 0, 1, ... in their order again (the numbers
    are the table's key: through negative ones, which no row has at rest)."""
    op.execute(
        "CREATE TEMP TABLE numbered_0042 AS SELECT resource_key, kind, row_id,"
        " row_number() OVER (PARTITION BY resource_key ORDER BY row_id) - 1 AS n"
        " FROM search_index"
    )
    op.execute("CREATE INDEX numbered_0042_key ON numbered_0042 (resource_key, kind, row_id)")
    op.execute(
        "UPDATE search_index SET row_id = -1 - (SELECT n FROM numbered_0042 t"
        " WHERE t.resource_key = search_index.resource_key AND t.kind = search_index.kind"
        " AND t.row_id = search_index.row_id)"
    )
    op.execute("UPDATE search_index SET row_id = -1 - row_id")
    op.execute("DROP TABLE numbered_0042")


def upgrade() -> None:
    _types_on_identifier_rows()
    if op.get_bind().dialect.name != "postgresql":
        _sqlite_numbered()  # the folded rows' numbers not left as gaps
        return
    op.execute(
        "DO $$ BEGIN IF EXISTS (SELECT 1 FROM search_index GROUP BY resource_key"
        f" HAVING count(*) > {_ROWS_MAX}) THEN RAISE EXCEPTION 'migration 0042: a resource"
        f" has more than {_ROWS_MAX} search_index rows (row_id is a smallint)'; END IF; END $$"
    )
    _copy(
        _0042,
        "(row_number() OVER (PARTITION BY resource_key ORDER BY row_id) - 1)::smallint",
    )
    _analyse_if_filled()


def _analyse_if_filled() -> None:
    """The copied table's statistics, when it holds rows. A new store's empty table is left
    never analysed, as it was before the copy: PostgreSQL then plans a young table from its
    own size estimates, which the store's statements are tested against
    (tests/integration/test_young_table_plans.py)."""
    op.execute(
        "DO $$ BEGIN IF EXISTS (SELECT 1 FROM search_index) THEN ANALYZE search_index; "
        "END IF; END $$"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        _types_as_rows(sqlite=True)
        return
    _types_as_rows(sqlite=False)
    # an :of-type row has its identifier's number: numbered right after it
    after = "param_id IN (SELECT param_id FROM search_param WHERE param LIKE '%\\:of-type')"
    _copy(_0040, f"row_number() OVER (ORDER BY resource_key, row_id, {after})")
    op.execute("CREATE SEQUENCE search_index_row_id_seq OWNED BY search_index.row_id")
    op.execute(
        "SELECT setval('search_index_row_id_seq', "
        "(SELECT coalesce(max(row_id), 0) + 1 FROM search_index), false)"
    )
    op.execute(
        "ALTER TABLE search_index ALTER COLUMN row_id"
        " SET DEFAULT nextval('search_index_row_id_seq'::regclass)"
    )
    _analyse_if_filled()

"""PostgreSQL: references that name a stored resource leave search_index for one array per
resource under GIN (decision 0088).

Each reference row with ``target_key`` becomes an element ``param_id << 40 | target_key`` of
its resource's row of ``search_terms`` (resource_key, refs bigint[]); the rows are deleted
and their index ``ix_search_index_target`` (then empty) dropped. References kept as text
stay rows. The keys' ranges are checked first: a value that would not fit its bits stops
the migration with nothing changed. SQLite: nothing changes (its rows stay).

Downgrade (PostgreSQL): the arrays unnested back into reference rows (after their
resource's other rows, in key order), the rows numbered over the table in (resource, row id)
order as 0036's downgrade numbers SQLite's, the index rebuilt, the table dropped.

Revision ID: 0037
Revises: 0036
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0037"
down_revision: str | Sequence[str] | None = "0036"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Plain numbers and names on purpose: a migration must not change when application code does
_SHIFT = 40
_TARGET_MAX = (1 << _SHIFT) - 1
_PARAM_MAX = (1 << (63 - _SHIFT)) - 1
_KEYED = "kind = 4 AND target_key IS NOT NULL"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        "DO $$ BEGIN IF EXISTS (SELECT 1 FROM search_index WHERE "
        f"{_KEYED} AND (target_key <= 0 OR target_key > {_TARGET_MAX} "
        f"OR param_id <= 0 OR param_id > {_PARAM_MAX})) THEN RAISE EXCEPTION "
        "'search_terms: a reference key does not fit param_id << 40 | target_key'; "
        "END IF; END $$"
    )
    op.execute(
        "CREATE TABLE search_terms (resource_key bigint NOT NULL, refs bigint[] NOT NULL, "
        "CONSTRAINT pk_search_terms PRIMARY KEY (resource_key))"
    )
    op.execute(
        "INSERT INTO search_terms (resource_key, refs) SELECT resource_key, "
        f"array_agg(DISTINCT (param_id::bigint << {_SHIFT}) | target_key) "
        f"FROM search_index WHERE {_KEYED} GROUP BY resource_key ORDER BY resource_key"
    )
    op.execute(f"DELETE FROM search_index WHERE {_KEYED}")
    op.execute("DROP INDEX IF EXISTS ix_search_index_target")
    op.execute(
        "CREATE INDEX ix_search_terms_refs ON search_terms USING gin (refs)"
        " WITH (fastupdate = off)"  # every probe reads the tree only (models.SEARCH_TERMS)
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        "INSERT INTO search_index (resource_key, param_id, kind, target_key) "
        f"SELECT t.resource_key, (k >> {_SHIFT})::int, 4, k & {_TARGET_MAX} "
        "FROM search_terms AS t CROSS JOIN LATERAL unnest(t.refs) AS k "
        "ORDER BY t.resource_key, k"
    )
    # the rows numbered over the table in (resource, row id) order, as 0036's downgrade
    # numbers SQLite's: each resource's rows keep their order, the references last
    op.execute(
        "UPDATE search_index AS s SET row_id = o.n FROM (SELECT row_id, row_number() OVER "
        "(ORDER BY resource_key, row_id) AS n FROM search_index) AS o WHERE s.row_id = o.row_id"
    )
    op.execute(
        "SELECT setval('search_index_row_id_seq', "
        "(SELECT coalesce(max(row_id), 0) + 1 FROM search_index), false)"
    )
    op.execute(
        "CREATE INDEX ix_search_index_target ON search_index (param_id, target_key, resource_key)"
        f" WHERE {_KEYED}"
    )
    op.execute("DROP TABLE search_terms")

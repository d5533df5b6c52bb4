"""PostgreSQL: a reference with no value (only a display) is no longer a ``search_index``
row but a presence marker in its resource's ``search_terms.refs``: ``param_id << 40``,
target 0 (decision 0124, adapter/store/search_terms.py). SQLite: nothing changes.

Upgrade: the rows deleted and their markers merged into the arrays (a resource without a
``search_terms`` row gets one). Downgrade: the markers written back as rows, numbered after
the resource's other rows, and taken out of the arrays (a row left with both arrays empty,
which only a marker made, is deleted).

Revision ID: 0051
Revises: 0050
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0051"
down_revision: str | Sequence[str] | None = "0050"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SHIFT = 40
_TARGET_MAX = (1 << _SHIFT) - 1
_REFERENCE = 4  # models.KINDS["reference"]
# a row with nothing but its resource, parameter and kind
_BARE = (
    f"kind = {_REFERENCE} AND target_key IS NULL AND reference IS NULL"
    " AND reference_full IS NULL AND code IS NULL AND code_full IS NULL AND value IS NULL"
    " AND value_norm IS NULL AND value_norm_full IS NULL AND system_id IS NULL"
    " AND value_number IS NULL AND value_date_start IS NULL AND value_date_end IS NULL"
)
# every reference parameter's marker: the arrays holding one are found by GIN
_MARKERS = f"ARRAY(SELECT param_id::bigint << {_SHIFT} FROM search_param WHERE kind = {_REFERENCE})"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    moved = op.get_bind().execute(
        sa.text(
            f"WITH bare AS (DELETE FROM search_index WHERE {_BARE}"
            " RETURNING resource_key, param_id)"
            " INSERT INTO search_terms (resource_key, refs)"
            f" SELECT resource_key, array_agg(DISTINCT param_id::bigint << {_SHIFT})"
            " FROM bare GROUP BY resource_key"
            " ON CONFLICT (resource_key) DO UPDATE SET refs = ARRAY("
            "SELECT DISTINCT k FROM unnest(search_terms.refs || EXCLUDED.refs) AS k ORDER BY k)"
        )
    )
    if moved.rowcount:  # a new store's empty tables keep no statistics (young tables' plans)
        op.execute("ANALYZE search_index")
        op.execute("ANALYZE search_terms")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    written = op.get_bind().execute(
        sa.text(
            "INSERT INTO search_index (row_id, resource_key, param_id, kind)"
            " SELECT coalesce((SELECT max(s.row_id) FROM search_index AS s"
            " WHERE s.resource_key = t.resource_key), -1)"
            " + row_number() OVER (PARTITION BY t.resource_key ORDER BY k),"
            f" t.resource_key, (k >> {_SHIFT})::int, {_REFERENCE}"
            " FROM search_terms AS t CROSS JOIN LATERAL unnest(t.refs) AS k"
            f" WHERE t.refs && {_MARKERS} AND k & {_TARGET_MAX} = 0"
        )
    )
    if not written.rowcount:
        return
    op.execute(
        f"UPDATE search_terms SET refs = ARRAY(SELECT k FROM unnest(refs) AS k"
        f" WHERE k & {_TARGET_MAX} <> 0 ORDER BY k) WHERE refs && {_MARKERS}"
    )
    op.execute("DELETE FROM search_terms WHERE refs = '{}' AND toks = '{}'")
    op.execute("ANALYZE search_index")
    op.execute("ANALYZE search_terms")

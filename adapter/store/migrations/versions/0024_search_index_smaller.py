"""A smaller search index (decision 0067):

* PostgreSQL: ``pk_search_index`` is dropped (2.3 KB per lab message; no query reads it:
  rows are found and deleted by ``resource_key``, a sort's tie-break compares the row ids of
  rows already found). ``row_id`` keeps its sequence and NOT NULL; on SQLite it is the rowid
  and its key costs nothing, so it stays.
* Both: a CodeableConcept's text row (a token row without system or code, only the text in
  ``value_norm`` for ``:text``) is deleted where a coded row of the same resource and
  parameter carries the same normalised text (a coding's display): ``:text`` finds the same
  resources, ``:missing`` still sees the coded row, sorts read codes only. The store no
  longer writes such rows (adapter/fhir/index_values.py).

Downgrade: the key is built again; the deleted rows are not written back (the code before
gives the same answers without them; ``adapter reindex`` writes them again if wanted).

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0024"
down_revision: str | Sequence[str] | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# the text row and a coded row of the same resource and parameter with the same text; the
# long-text column compared too (two texts cut to the same key may differ after it)
_REDUNDANT_TEXT_ROWS = """
DELETE FROM search_index
WHERE kind = 'token' AND code IS NULL AND system_id IS NULL AND value_norm IS NOT NULL
  AND EXISTS (
    SELECT 1 FROM search_index o
    WHERE o.resource_key = search_index.resource_key
      AND o.resource_type = search_index.resource_type
      AND o.param = search_index.param
      AND o.kind = 'token'
      AND o.code IS NOT NULL
      AND o.value_norm = search_index.value_norm
      AND coalesce(o.value_norm_full, '') = coalesce(search_index.value_norm_full, '')
  )
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE search_index DROP CONSTRAINT pk_search_index")
    op.execute(_REDUNDANT_TEXT_ROWS)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE search_index ADD CONSTRAINT pk_search_index PRIMARY KEY (row_id)")

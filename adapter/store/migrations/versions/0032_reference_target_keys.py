"""The search index names a reference's target by its resource key (decision 0080).

A reference row held its target as text, ``Type/<id>`` (about 44 bytes for a uuid id), in
the row and in ``ix_search_index_reference``. A reference to a resource of this store now
holds the target's ``resource.resource_key`` in ``search_index.target_key`` (an integer,
with its own partial index ``ix_search_index_target``) and no text; a reference to
anything else (another server's URL that is not ``.../Type/id``, ``urn:uuid:``, an
identifier only, a resource not stored) keeps the text. ``ix_search_index_reference``
holds only the rows with a text.

Upgrade: the column is added, every reference row whose ``Type/id`` names a stored resource
(of a type the store indexes) takes its key and loses its text, and the indexes are
rebuilt. On SQLite the file does not shrink until ``VACUUM``; on PostgreSQL the rows
updated leave dead tuples until vacuumed (docs/operations.md).

Downgrade: the text is written back from the target's resource row, the column and its
index dropped, the reference index built over every reference row again.

Revision ID: 0032
Revises: 0031
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0032"
down_revision: str | Sequence[str] | None = "0031"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The types the store indexes at this revision (adapter/fhir/search_params.py RESOURCES):
# a migration must not change when application code changes. A reference to another type
# keeps its text, which every search reads too.
_TYPES = (
    "AllergyIntolerance", "Bundle", "CodeSystem", "Composition", "Condition", "Consent",
    "Coverage", "DiagnosticReport", "DocumentReference", "Encounter", "MedicationRequest",
    "MedicationStatement", "Observation", "OperationDefinition", "Organization", "Patient",
    "Practitioner", "PractitionerRole", "Procedure", "Provenance", "ServiceRequest",
    "Specimen", "Task",
)  # fmt: skip
_REFERENCE = 4  # models.KINDS["reference"]
_KEY_CHARS = 200  # index_keys.KEY_CHARS: a reference this long keeps reference_full


def _index(name: str, column: str, where: str | None) -> None:
    predicate = sa.text(f"kind = {_REFERENCE}" + (f" AND {where}" if where else ""))
    op.create_index(
        name,
        "search_index",
        ["param_id", column, "resource_key"],
        sqlite_where=predicate,
        postgresql_where=predicate,
    )


def upgrade() -> None:
    op.add_column("search_index", sa.Column("target_key", sa.BigInteger(), nullable=True))
    op.drop_index("ix_search_index_reference", table_name="search_index")
    types = ", ".join(f"'{t}'" for t in _TYPES)
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "UPDATE search_index AS si SET target_key = r.resource_key, reference = NULL"
            " FROM resource AS r"
            f" WHERE si.kind = {_REFERENCE} AND si.reference_full IS NULL"
            " AND si.reference LIKE '%/%' AND si.reference NOT LIKE '%/%/%'"
            " AND r.resource_type = split_part(si.reference, '/', 1)"
            " AND r.id = split_part(si.reference, '/', 2)"
            f" AND r.resource_type IN ({types})"
            f" AND length(si.reference) < {_KEY_CHARS}"
        )
    else:
        op.execute(
            "UPDATE search_index SET target_key = r.resource_key, reference = NULL"
            " FROM resource AS r"
            f" WHERE search_index.kind = {_REFERENCE} AND search_index.reference_full IS NULL"
            " AND instr(search_index.reference, '/') > 0"
            " AND r.resource_type"
            " = substr(search_index.reference, 1, instr(search_index.reference, '/') - 1)"
            " AND r.id = substr(search_index.reference, instr(search_index.reference, '/') + 1)"
            f" AND r.resource_type IN ({types})"
            f" AND length(search_index.reference) < {_KEY_CHARS}"
        )
    _index("ix_search_index_reference", "reference", "reference IS NOT NULL")
    _index("ix_search_index_target", "target_key", "target_key IS NOT NULL")


def downgrade() -> None:
    op.drop_index("ix_search_index_target", table_name="search_index")
    op.drop_index("ix_search_index_reference", table_name="search_index")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "UPDATE search_index AS si SET reference = r.resource_type || '/' || r.id"
            " FROM resource AS r WHERE r.resource_key = si.target_key"
        )
    else:
        op.execute(
            "UPDATE search_index SET reference = r.resource_type || '/' || r.id"
            " FROM resource AS r WHERE r.resource_key = search_index.target_key"
        )
    op.drop_column("search_index", "target_key")
    _index("ix_search_index_reference", "reference", None)

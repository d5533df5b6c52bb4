"""Smaller history and outbox (decision 0075). The current version of a resource has no
``resource_version`` row: the resource row holds everything that row held (version, time,
deleted flag, message; its body was already only there since 0016), so the history
table keeps only the versions
that were superseded, each with its body. The store writes a history row when a version
is superseded; history, vread and documents read the resource row as the current
version.

Upgrade deletes every history row of a current version; downgrade writes them back as
0016 to 0027 had them (no body: the current body is the resource row's).

The outbox (same decision): ``patient_key`` is dropped (an order key ``Patient/<id>`` is
the row's patient; every row had them equal or the patient empty), and the (destination,
sequence) unique constraint becomes a unique index on the rows that have a number (rows
still to send, every row at ingest, have no entry). On SQLite the outbox table is rebuilt
(a table's UNIQUE constraint cannot be dropped in place); downgrade puts both back.

Revision ID: 0030
Revises: 0029
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0030"
down_revision: str | Sequence[str] | None = "0029"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_CURRENT = (
    "EXISTS (SELECT 1 FROM resource r WHERE r.resource_type = resource_version.resource_type"
    " AND r.id = resource_version.id AND r.version_id = resource_version.version_id)"
)


_SEQUENCE = "uq_outbox_destination_sequence"
_NUMBERED = sa.text("sequence IS NOT NULL")


def upgrade() -> None:
    op.execute(f"DELETE FROM resource_version WHERE {_CURRENT}")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_constraint(_SEQUENCE, type_="unique")
        batch.drop_column("patient_key")
    op.create_index(
        _SEQUENCE,
        "outbox",
        ["destination", "sequence"],
        unique=True,
        sqlite_where=_NUMBERED,
        postgresql_where=_NUMBERED,
    )


def downgrade() -> None:
    op.drop_index(_SEQUENCE, "outbox")
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("patient_key", sa.String(129), nullable=True))
        batch.create_unique_constraint(_SEQUENCE, ["destination", "sequence"])
    op.execute("UPDATE outbox SET patient_key = order_key WHERE order_key LIKE 'Patient/%'")
    # version 0 is a placeholder inside one transaction (lock_resources), never a version
    op.execute(
        "INSERT INTO resource_version (resource_type, id, version_id, last_updated, deleted,"
        " body, message_id) SELECT r.resource_type, r.id, r.version_id, r.last_updated,"
        " r.deleted, NULL, r.message_id FROM resource r WHERE r.version_id > 0 AND NOT EXISTS"
        " (SELECT 1 FROM resource_version v WHERE v.resource_type = r.resource_type"
        " AND v.id = r.id AND v.version_id = r.version_id)"
    )

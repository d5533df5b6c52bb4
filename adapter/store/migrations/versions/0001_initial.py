"""Initial schema: inbound_message, resource, resource_version, search_index, outbox.

Revision ID: 0001
Revises:
Create Date: 2026-01-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Plain types on purpose: a migration must not change when application code changes.
UTC_TIME = sa.DateTime(timezone=True)  # adapter.store.types.UTCDateTime
JSON_TEXT = sa.Text()  # adapter.store.types.JSONText
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TYPE = sa.String(64)
ID = sa.String(64)
KEY = sa.String(129)  # "Patient/<id>"


def upgrade() -> None:
    op.create_table(
        "inbound_message",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("source_system", ID, nullable=False),
        sa.Column("facility_id", ID, nullable=True),
        sa.Column("received_at", UTC_TIME, nullable=False),
        sa.Column("content_type", sa.String(255), nullable=True),
        sa.Column("detected_format", sa.String(32), nullable=True),
        sa.Column("encoding", sa.String(32), nullable=True),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("issues", sa.JSON(), nullable=False),
        sa.Column("resources", sa.JSON(), nullable=False),
        sa.Column("processed_at", UTC_TIME, nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_inbound_message"),
        sa.UniqueConstraint(
            "source_system", "sha256", name="uq_inbound_message_source_system_sha256"
        ),
    )
    op.create_index(
        "ix_inbound_message_status_received_at", "inbound_message", ["status", "received_at"]
    )
    op.create_index("ix_inbound_message_received_at", "inbound_message", ["received_at"])

    op.create_table(
        "resource",
        sa.Column("resource_type", TYPE, nullable=False),
        sa.Column("id", ID, nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("last_updated", UTC_TIME, nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("body", JSON_TEXT, nullable=False),
        sa.Column("message_id", sa.String(36), nullable=True),
        sa.Column("patient_key", KEY, nullable=True),
        sa.Column("facility_id", ID, nullable=True),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["inbound_message.id"],
            ondelete="SET NULL",
            name="fk_resource_message_id_inbound_message",
        ),
        sa.PrimaryKeyConstraint("resource_type", "id", name="pk_resource"),
    )
    op.create_index(
        "ix_resource_resource_type_last_updated_id",
        "resource",
        ["resource_type", "last_updated", "id"],
    )
    op.create_index("ix_resource_patient_key", "resource", ["patient_key"])
    op.create_index("ix_resource_message_id", "resource", ["message_id"])

    op.create_table(
        "resource_version",
        sa.Column("resource_type", TYPE, nullable=False),
        sa.Column("id", ID, nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("last_updated", UTC_TIME, nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("body", JSON_TEXT, nullable=False),
        sa.Column("message_id", sa.String(36), nullable=True),
        sa.ForeignKeyConstraint(
            ["resource_type", "id"],
            ["resource.resource_type", "resource.id"],
            ondelete="CASCADE",
            name="fk_resource_version_resource_type_id_resource",
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["inbound_message.id"],
            ondelete="SET NULL",
            name="fk_resource_version_message_id_inbound_message",
        ),
        sa.PrimaryKeyConstraint("resource_type", "id", "version_id", name="pk_resource_version"),
    )
    op.create_index("ix_resource_version_message_id", "resource_version", ["message_id"])

    op.create_table(
        "search_index",
        sa.Column("row_id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("resource_type", TYPE, nullable=False),
        sa.Column("resource_id", ID, nullable=False),
        sa.Column("param", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("system", sa.Text(), nullable=True),
        sa.Column("code", sa.Text(), nullable=True),
        sa.Column("value", sa.Text(), nullable=True),
        sa.Column("value_norm", sa.Text(), nullable=True),
        sa.Column("value_date_start", UTC_TIME, nullable=True),
        sa.Column("value_date_end", UTC_TIME, nullable=True),
        sa.Column("value_number", sa.Float(), nullable=True),
        sa.Column("reference", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["resource_type", "resource_id"],
            ["resource.resource_type", "resource.id"],
            ondelete="CASCADE",
            name="fk_search_index_resource_type_resource_id_resource",
        ),
        sa.PrimaryKeyConstraint("row_id", name="pk_search_index"),
    )
    for kind, columns, extra in (
        ("token", ["code", "system"], {}),
        ("uri", ["code"], {}),
        ("string", ["value_norm"], {"postgresql_ops": {"value_norm": "text_pattern_ops"}}),
        ("date", ["value_date_start", "value_date_end"], {}),
        ("quantity", ["value_number"], {}),
        ("reference", ["reference"], {}),
    ):
        where = sa.text(f"kind = '{kind}'")
        op.create_index(
            f"ix_search_index_{kind}",
            "search_index",
            ["resource_type", "param", *columns, "resource_id"],
            postgresql_where=where,
            sqlite_where=where,
            **extra,
        )
    op.create_index("ix_search_index_resource", "search_index", ["resource_type", "resource_id"])

    op.create_table(
        "outbox",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("destination", ID, nullable=False),
        sa.Column("resource_type", TYPE, nullable=False),
        sa.Column("resource_id", ID, nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("patient_key", KEY, nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTC_TIME, nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("message_id", sa.String(36), nullable=True),
        sa.CheckConstraint(
            "state IN ('pending', 'in-flight', 'delivered', 'dead')", name="ck_outbox_state"
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["inbound_message.id"],
            ondelete="SET NULL",
            name="fk_outbox_message_id_inbound_message",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_outbox"),
    )
    op.create_index("ix_outbox_state_next_attempt_at", "outbox", ["state", "next_attempt_at"])
    op.create_index(
        "ix_outbox_destination_patient_key_id", "outbox", ["destination", "patient_key", "id"]
    )
    op.create_index(
        "ix_outbox_resource_type_resource_id", "outbox", ["resource_type", "resource_id"]
    )
    op.create_index("ix_outbox_message_id", "outbox", ["message_id"])


def downgrade() -> None:
    op.drop_table("outbox")
    op.drop_table("search_index")
    op.drop_table("resource_version")
    op.drop_table("resource")
    op.drop_table("inbound_message")

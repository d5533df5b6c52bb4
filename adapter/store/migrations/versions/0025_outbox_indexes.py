"""The outbox's indexes by what its queries use (decision 0070): one (destination, state,
order_key) index serves the claim's heads and queues, coalescing (a resource's rows
share its order key), the per-destination counts and replays, in place of (destination,
state, next_attempt_at), (destination, order_key, id) and (resource_type, resource_id).
(state, next_attempt_at), message_id and the (destination, sequence) constraint stay.

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0025"
down_revision: str | Sequence[str] | None = "0024"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_DROPPED = {
    "ix_outbox_destination_state_next_attempt_at": ["destination", "state", "next_attempt_at"],
    "ix_outbox_destination_order_key_id": ["destination", "order_key", "id"],
    "ix_outbox_resource_type_resource_id": ["resource_type", "resource_id"],
}
_MADE = ("ix_outbox_destination_state_order_key", ["destination", "state", "order_key"])


def upgrade() -> None:
    op.create_index(_MADE[0], "outbox", _MADE[1])
    for name in _DROPPED:
        op.drop_index(name, "outbox")


def downgrade() -> None:
    for name, columns in _DROPPED.items():
        op.create_index(name, "outbox", columns)
    op.drop_index(_MADE[0], "outbox")

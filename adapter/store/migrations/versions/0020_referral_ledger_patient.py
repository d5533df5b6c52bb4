"""The referral ledger by patient: every stored Encounter asks whether it is the sender's
follow-up of one of its patient's referrals (adapter/referral/ledger_step.py), and without
this index that question read every ledger row of the facility (a growing cost per
document: 3-4 % of a 50,000-document night at 7,500 referrals, more as the year's ledger
grows).

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0020"
down_revision: str | Sequence[str] | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_referral_ledger_patient_id", "referral_ledger", ["patient_id"])


def downgrade() -> None:
    op.drop_index("ix_referral_ledger_patient_id", table_name="referral_ledger")

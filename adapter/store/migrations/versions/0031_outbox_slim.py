"""A smaller outbox row (decision 0079).

* SQLite: the row's six instants (``next_attempt_at``, ``created_at``, ``claimed_until``,
  ``first_attempt_at``, ``last_attempt_at``, ``delivered_at``) hold the integer
  microseconds since 1970 instead of 26 characters of text (``types.UTCMicros``, as
  ``audit_record.recorded`` since 0029): 8 bytes or fewer in the row and in the (state,
  next_attempt_at) index. The columns stay DATETIME (no table rebuilt); one UPDATE per
  column. PostgreSQL's ``timestamptz`` is 8 bytes already: nothing to do.

Downgrade: SQLite's instants back to text.

Revision ID: 0031
Revises: 0030
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0031"
down_revision: str | Sequence[str] | None = "0030"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INSTANTS = (
    "next_attempt_at",
    "created_at",
    "claimed_until",
    "first_attempt_at",
    "last_attempt_at",
    "delivered_at",
)


def _micros(column: str) -> str:
    # SQLAlchemy's SQLite text of a UTC instant: "2026-12-05 08:00:00.123456" (the fraction
    # always has six digits; appended zeros make a missing one read as .000000)
    return (
        f"CAST(strftime('%s', substr({column}, 1, 19)) AS INTEGER) * 1000000"
        f" + CAST(substr({column} || '.000000', 21, 6) AS INTEGER)"
    )


def _text(column: str) -> str:
    return (
        f"strftime('%Y-%m-%d %H:%M:%S', {column} / 1000000, 'unixepoch')"
        f" || printf('.%06d', {column} % 1000000)"
    )


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for column in INSTANTS:
            op.execute(
                f"UPDATE outbox SET {column} = {_micros(column)} WHERE typeof({column}) = 'text'"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for column in INSTANTS:
            op.execute(
                f"UPDATE outbox SET {column} = {_text(column)} WHERE typeof({column}) = 'integer'"
            )

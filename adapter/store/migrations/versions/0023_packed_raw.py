"""inbound_message.raw is stored zlib-compressed when smaller (decision 0065,
adapter/store/raw_codec.py). The rows written before keep their bytes as received; the
few whose bytes happen to start with the compressed form's mark (a NUL byte and ``raw``)
are given the mark's "as it is" codec, so that no received message is read as a
compressed one. Downgrade writes every row back as received.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0023"
down_revision: str | Sequence[str] | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# adapter/store/raw_codec.py as of this revision (a migration must not change with the code)
MARK = b"\x00raw"
AS_IS = b"="

_message = sa.table(
    "inbound_message", sa.column("id", sa.String()), sa.column("raw", sa.LargeBinary())
)


def _starting_with_mark(bind: sa.engine.Connection) -> list[sa.Row]:
    """The rows whose stored bytes begin with ``MARK``."""
    return list(
        bind.execute(
            sa.select(_message.c.id, _message.c.raw).where(
                sa.func.substr(_message.c.raw, 1, len(MARK)) == sa.literal(MARK, sa.LargeBinary())
            )
        ).all()
    )


def upgrade() -> None:
    bind = op.get_bind()
    marked = _starting_with_mark(bind)
    for message_id, raw in marked:
        bind.execute(
            _message.update()
            .where(_message.c.id == message_id)
            .values(raw=MARK + AS_IS + bytes(raw))
        )


def downgrade() -> None:
    import zlib

    bind = op.get_bind()
    marked = _starting_with_mark(bind)
    for message_id, stored in marked:
        stored = bytes(stored)
        codec, body = stored[len(MARK) : len(MARK) + 1], stored[len(MARK) + 1 :]
        raw = zlib.decompress(body) if codec == b"z" else body
        bind.execute(_message.update().where(_message.c.id == message_id).values(raw=raw))

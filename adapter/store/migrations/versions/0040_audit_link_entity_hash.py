"""audit_link found through a hash index on PostgreSQL; inbound messages stored with a
dictionary (decision 0092).

1. PostgreSQL: audit_link found through a hash index of each link's entity.

audit_link's primary key ``(kind, reference, seq)`` was a b-tree as large as the table (0.6
KB per lab message: 9.6 links, each a random 18-byte reference, the pages split half-full).
It becomes a hash index of each link's entity: the stored reference without its version
(a packed reference's first 18 bytes, a text one's bytes before its first ``/_history/``),
about 20 bytes an entry. The patient and entity searches (and the disclosure report) name
that entity and keep their condition on ``reference``, so they find the same links. The
key's uniqueness was never needed: the writer inserts a record's links once, as a set.

   SQLite: nothing changes (the table is its key, ``WITHOUT ROWID``). Downgrade: the hash
   index dropped, the primary key made again (its b-tree built anew).

2. Both databases: new inbound messages are stored as zstd frames made with a dictionary of
   HL7 v2 messages (codec ``d``, adapter/store/raw_codec.py); the rows stored before keep
   their zlib form (``z``), which every version reads: nothing is rewritten on upgrade.
   Downgrade: the ``d`` rows are stored again as the code before 0040 stores them (zlib when
   smaller, else as received), so that code reads them.

3. Both databases: new resource rows keep a 16-byte content hash (nothing to change on
   upgrade). Downgrade: those are padded to 32 bytes with zeros (the code before and
   migration 0033's downgrade expect 32): such a resource's next save writes a version.

Written not to depend on migration 0039 (another change's): only audit_link is touched.

Revision ID: 0040
Revises: 0038
Create Date: 2026-12-06
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from pathlib import Path

import sqlalchemy as sa
import zstandard
from alembic import op

revision: str = "0040"
down_revision: str | Sequence[str] | None = "0038"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Plain text on purpose: a migration must not change when application code does (the same
# expression as adapter/store/audit_reference.py's ENTITY_SQL over ``reference``)
_AT = "POSITION(('\\x2f5f686973746f72792f'::bytea) IN (reference))"
_ENTITY = (
    "\nCASE\n"
    "    WHEN SUBSTRING(reference FROM 1 FOR 1) = '\\x01'::bytea AND length(reference) >= 18"
    " THEN SUBSTRING(reference FROM 1 FOR 18)\n"
    f"    WHEN {_AT} > 0 THEN SUBSTRING(reference FROM 1 FOR {_AT} - 1)\n"
    "    ELSE reference\n"
    "END"
)


# adapter/store/raw_codec.py's forms as of this revision
MARK = b"\x00raw"
ZSTD, ZLIB, AS_IS = b"d", b"z", b"="
# the shipped dictionary file the ``d`` frames name (a shipped dictionary never changes)
_DICTIONARY = Path(__file__).resolve().parents[3] / "data/body-dictionaries/2026120601.zdict"
_BATCH = 500

_message = sa.table(
    "inbound_message", sa.column("id", sa.LargeBinary()), sa.column("raw", sa.LargeBinary())
)


def _zlib_form(raw: bytes) -> bytes:
    """The stored form of before this revision (raw_codec.pack at 0038)."""
    packed = zlib.compress(raw, 6)
    if len(packed) + len(MARK) + 1 < len(raw):
        return MARK + ZLIB + packed
    return MARK + AS_IS + raw if raw.startswith(MARK) else raw


def _raw_back_to_zlib() -> None:
    bind = op.get_bind()
    reader = zstandard.ZstdDecompressor(
        dict_data=zstandard.ZstdCompressionDict(_DICTIONARY.read_bytes())
    )
    marked = sa.func.substr(_message.c.raw, 1, len(MARK) + 1) == sa.literal(
        MARK + ZSTD, sa.LargeBinary()
    )
    after: bytes | None = None
    while True:
        query = sa.select(_message.c.id, _message.c.raw).where(marked)
        if after is not None:
            query = query.where(_message.c.id > after)
        rows = bind.execute(query.order_by(_message.c.id).limit(_BATCH)).all()
        for message_id, stored in rows:
            try:
                raw = reader.decompress(bytes(stored)[len(MARK) + 1 :])
            except zstandard.ZstdError:
                continue  # changed in the database: left as it is (the sha256 check refuses it)
            bind.execute(
                _message.update().where(_message.c.id == message_id).values(raw=_zlib_form(raw))
            )
        if len(rows) < _BATCH:
            return
        after = bytes(rows[-1][0]) if not isinstance(rows[-1][0], str) else rows[-1][0]


_resource = sa.table(
    "resource",
    sa.column("resource_type", sa.String()),
    sa.column("id", sa.String()),
    sa.column("content_hash", sa.LargeBinary()),
)


def _content_hash_back_to_32_bytes() -> None:
    """The 16-byte content hashes (decision 0092) padded to the 32 bytes of before with
    zeros: the code before 0040 and migration 0033's downgrade expect 32; such a resource
    then reads as changed at its next save (one version more), never as unchanged."""
    bind = op.get_bind()
    short = sa.func.length(_resource.c.content_hash) == 16
    while True:
        rows = bind.execute(
            sa.select(_resource.c.resource_type, _resource.c.id, _resource.c.content_hash)
            .where(short)
            .limit(_BATCH)
        ).all()
        for rtype, rid, stored in rows:
            bind.execute(
                _resource.update()
                .where(_resource.c.resource_type == rtype, _resource.c.id == rid)
                .values(content_hash=bytes(stored) + bytes(16))
            )
        if len(rows) < _BATCH:
            return


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"CREATE INDEX ix_audit_link_entity ON audit_link USING hash (({_ENTITY}))")
    op.execute("ALTER TABLE audit_link DROP CONSTRAINT pk_audit_link")
    op.execute("ANALYZE audit_link")


def downgrade() -> None:
    _raw_back_to_zlib()
    _content_hash_back_to_32_bytes()
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        "ALTER TABLE audit_link ADD CONSTRAINT pk_audit_link PRIMARY KEY (kind, reference, seq)"
    )
    op.execute("DROP INDEX ix_audit_link_entity")

"""PostgreSQL: a record's audit links as one value on its row (decision 0119).

``audit_link`` held 9.6 rows per lab message, each with its own row header, under two
indexes (``seq``, and the hash index of each link's entity, migration 0040): 0.98 KB per
message. The links become ``audit_record.links bytea``: each link an element, its kind as
stored (``p`` / ``e``) and its stored reference (adapter/store/audit_reference.py), the
elements sorted and each written after its length (one byte; 255 and two bytes for a longer
one); NULL for a record without links. The function ``audit_link_elements`` reads them
back as a ``bytea[]``. A GIN index over ``audit_link_hashes(links)`` (for each link the
first 8 bytes of sha256 of its kind and entity, the version left off, as a bigint) finds
the records a patient or entity search names; the search then keeps those whose elements
hold the reference. The chain is over ``body`` alone: no hash changes.

SQLite: ``audit_record.links`` is added and stays NULL; audit_link stays as it is (its key
is the table, decision 0074).

Upgrade (PostgreSQL): one UPDATE of every record that has links (a new version of those
rows: ``VACUUM audit_record`` afterwards gives the old ones' space to new records), the
index built, audit_link dropped. Downgrade: audit_link made again as at 0045 (its rows from
the elements, its two indexes; the service's grants on it must be given again: ``adapter
audit grants``), the column, index and functions dropped.

Revision ID: 0048
Revises: 0045
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0048"
down_revision: str | Sequence[str] | None = "0047"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Plain text on purpose: a migration must not change when application code does.
# audit_reference.unpack_links in SQL (a value cut short gives its last element short)
_ELEMENTS = """
CREATE FUNCTION audit_link_elements(links bytea) RETURNS bytea[]
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    at integer := 0;
    size integer;
    found bytea[] := '{}';
BEGIN
    WHILE at < length(links) LOOP
        size := get_byte(links, at);
        at := at + 1;
        IF size = 255 THEN
            EXIT WHEN at + 2 > length(links);
            size := get_byte(links, at) * 256 + get_byte(links, at + 1);
            at := at + 2;
        END IF;
        found := found || substring(links FROM at + 1 FOR size);
        at := at + size;
    END LOOP;
    RETURN found;
END
$$
"""
# The entity of an element ``l`` (kind byte, then the stored reference ``s``): the kind and
# audit_reference.entity_of(s): a packed reference's 18 bytes, a text one's bytes before its
# first ``/_history/``, else ``s``. The same as adapter/store/audit_reference.element_hash
_AT = r"POSITION('\x2f5f686973746f72792f'::bytea IN SUBSTRING(l FROM 2))"
_HASHES = rf"""
CREATE FUNCTION audit_link_hashes(links bytea) RETURNS bigint[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
SELECT array_agg(DISTINCT ('x' || encode(SUBSTRING(sha256(SUBSTRING(l FROM 1 FOR 1) || CASE
    WHEN SUBSTRING(l FROM 2 FOR 1) = '\x01'::bytea AND length(l) >= 19
        THEN SUBSTRING(l FROM 2 FOR 18)
    WHEN {_AT} > 0 THEN SUBSTRING(l FROM 2 FOR {_AT} - 1)
    ELSE SUBSTRING(l FROM 2)
END) FROM 1 FOR 8), 'hex'))::bit(64)::bigint)
FROM unnest(audit_link_elements(links)) AS l
$$
"""
# one element after its length (audit_reference.pack_links)
_ENTRY = (
    "CASE WHEN length(e) < 255 THEN set_byte('\\x00'::bytea, 0, length(e)) "
    "ELSE set_byte(set_byte('\\xff0000'::bytea, 1, length(e) / 256), 2, length(e) % 256) "
    "END || e"
)

_ENTITY = (  # migration 0040's index of audit_link, for the downgrade
    "\nCASE\n"
    "    WHEN SUBSTRING(reference FROM 1 FOR 1) = '\\x01'::bytea AND length(reference) >= 18"
    " THEN SUBSTRING(reference FROM 1 FOR 18)\n"
    "    WHEN POSITION(('\\x2f5f686973746f72792f'::bytea) IN (reference)) > 0"
    " THEN SUBSTRING(reference FROM 1 FOR POSITION(('\\x2f5f686973746f72792f'::bytea) IN"
    " (reference)) - 1)\n"
    "    ELSE reference\n"
    "END"
)


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        op.execute("ALTER TABLE audit_record ADD COLUMN links BLOB")
        return
    op.execute(_ELEMENTS)
    op.execute(_HASHES)
    op.execute("ALTER TABLE audit_record ADD COLUMN links bytea")
    op.execute(
        f"UPDATE audit_record AS r SET links = l.links FROM (SELECT seq, string_agg({_ENTRY}, "
        "''::bytea ORDER BY e) AS links FROM (SELECT DISTINCT seq, "
        "convert_to(kind, 'UTF8') || reference AS e FROM audit_link) AS d GROUP BY seq) AS l "
        "WHERE r.seq = l.seq"
    )
    op.execute(
        "CREATE INDEX ix_audit_record_links ON audit_record "
        "USING gin (audit_link_hashes(links)) WITH (fastupdate = off)"
    )
    op.execute("DROP TABLE audit_link")
    op.execute("ANALYZE audit_record")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        op.execute("ALTER TABLE audit_record DROP COLUMN links")
        return
    op.execute(
        "CREATE TABLE audit_link (seq BIGINT NOT NULL, kind VARCHAR(16) NOT NULL, "
        "reference BYTEA NOT NULL, CONSTRAINT fk_audit_link_seq_audit_record "
        "FOREIGN KEY(seq) REFERENCES audit_record (seq))"
    )
    op.execute(
        "INSERT INTO audit_link (seq, kind, reference) "
        "SELECT r.seq, convert_from(SUBSTRING(l FROM 1 FOR 1), 'UTF8'), SUBSTRING(l FROM 2) "
        "FROM audit_record AS r, unnest(audit_link_elements(r.links)) AS l ORDER BY r.seq"
    )
    op.execute("CREATE INDEX ix_audit_link_seq ON audit_link (seq)")
    op.execute(f"CREATE INDEX ix_audit_link_entity ON audit_link USING hash (({_ENTITY}))")
    op.execute("DROP INDEX ix_audit_record_links")
    op.execute("ALTER TABLE audit_record DROP COLUMN links")
    op.execute("DROP FUNCTION audit_link_hashes(bytea)")
    op.execute("DROP FUNCTION audit_link_elements(bytea)")
    op.execute("ANALYZE audit_link")

"""Rewrite stored bodies from one form to the other, in key order and in batches: plain
JSON text to zstd frames (``adapter store compact``) or back (the downgrade of migration
0017). Raw SQL on a connection, so that it runs inside a migration whatever the model
says; each body keeps its exact JSON text (decision 0049).

Safe beside running writers: a ``resource`` row is only rewritten while it still has the
version it was read at (a newer body, written meanwhile, is left alone: it is a frame
already), and a history row's body never changes once it is set."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

from sqlalchemy import Connection, text

from adapter.store.body_codec import is_frame, json_bytes, pack_json

KEYS = {
    "resource": ("resource_type", "id"),
    "resource_version": ("resource_type", "id", "version_id"),
    # written back as plain text by migration 0027's downgrade only: the service's role may
    # not UPDATE an audit table, and old plain records leave with the audit retention
    "audit_record": ("seq",),
}
TABLES = ("resource", "resource_version")  # what ``adapter store compact`` compresses


def rewrite_bodies(conn: Connection, table: str, *, compress: bool, batch: int = 500) -> int:
    """Compress the plain bodies of ``table`` (``compress``) or write every frame back as
    plain JSON text (TEXT on SQLite, its UTF-8 bytes in PostgreSQL's bytea), all on
    ``conn`` in its transaction. Returns the rows rewritten."""
    done, last = 0, None
    while True:
        changed, last = rewrite_batch(conn, table, compress=compress, after=last, batch=batch)
        done += changed
        if last is None:
            return done


def rewrite_in_transactions(
    begin: Callable[[], AbstractContextManager[Connection]],
    table: str,
    *,
    compress: bool,
    batch: int = 500,
) -> int:
    """As :func:`rewrite_bodies`, one transaction (``begin()``) per batch: for a store in
    use (``adapter store compact``), whose writers then never wait long."""
    done, last = 0, None
    while True:
        with begin() as conn:
            changed, last = rewrite_batch(conn, table, compress=compress, after=last, batch=batch)
        done += changed
        if last is None:
            return done


def rewrite_batch(
    conn: Connection, table: str, *, compress: bool, after: tuple | None, batch: int
) -> tuple[int, tuple | None]:
    """The next ``batch`` rows after the key ``after``: (rows rewritten, the last key read,
    None at the end of the table)."""
    keys = KEYS[table]
    columns = ", ".join(keys)
    guard = "version_id" if table == "resource" else "NULL"
    past, params = after_key(keys, after)
    where = f"body IS NOT NULL{past}"
    rows = conn.execute(
        text(
            f"SELECT {columns}, {guard}, body FROM {table} WHERE {where} "
            f"ORDER BY {columns} LIMIT {int(batch)}"
        ),
        params,
    ).all()
    if not rows:
        return 0, None
    sqlite = conn.dialect.name == "sqlite"
    changes = []
    for row in rows:
        body = row[-1]
        if not isinstance(body, str) and body[:1] in (b"\x01", b"\x02"):
            continue  # stored without its stamps (decision 0128): a frame inside, left as is
        if compress and not is_frame(body):
            new: bytes | str = pack_json(json_bytes(body))
        elif not compress and is_frame(body):
            plain = json_bytes(body)
            new = plain.decode() if sqlite else plain
        else:
            continue
        changes.append({"body": new, "g": row[-2], **{f"k{n}": v for n, v in enumerate(row[:-2])}})
    if changes:
        match = " AND ".join(f"{k} = :k{n}" for n, k in enumerate(keys))
        still = "version_id = :g" if table == "resource" else "body IS NOT NULL"
        conn.execute(text(f"UPDATE {table} SET body = :body WHERE {match} AND {still}"), changes)
    return len(changes), tuple(rows[-1][: len(keys)])


def after_key(keys: tuple[str, ...], after: tuple | None) -> tuple[str, dict[str, object]]:
    """The keyset condition of the rows after the key ``after`` (``" AND (k...) > (...)"``,
    '' for the first batch) and its parameters ``k0``, ``k1``, ..."""
    if after is None:
        return "", {}
    marks = ", ".join(f":k{n}" for n in range(len(keys)))
    return f" AND ({', '.join(keys)}) > ({marks})", {f"k{n}": v for n, v in enumerate(after)}

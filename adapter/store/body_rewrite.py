"""Rewrite stored bodies from one form to the other, in key order and in batches: plain
JSON text to zstd frames (``adapter store compact``) or back (the downgrade of migration
0017). Raw SQL on a connection, so that it runs inside a migration whatever the model
says; each body keeps its exact JSON text (decision 0049)."""

from __future__ import annotations

from sqlalchemy import Connection, text

from adapter.store.body_codec import is_frame, json_bytes, pack_json

_KEYS = {
    "resource": ("resource_type", "id"),
    "resource_version": ("resource_type", "id", "version_id"),
}


def rewrite_bodies(conn: Connection, table: str, *, compress: bool, batch: int = 500) -> int:
    """Compress the plain bodies of ``table`` (``compress``) or write every frame back as
    plain JSON text (TEXT on SQLite, its UTF-8 bytes in PostgreSQL's bytea). Returns the
    rows rewritten."""
    keys = _KEYS[table]
    sqlite = conn.dialect.name == "sqlite"
    columns = ", ".join(keys)
    after = f"({columns}) > ({', '.join(f':k{n}' for n in range(len(keys)))})"
    match = " AND ".join(f"{k} = :k{n}" for n, k in enumerate(keys))
    update = text(f"UPDATE {table} SET body = :body WHERE {match}")
    last: tuple | None = None
    done = 0
    while True:
        where = f"WHERE body IS NOT NULL{' AND ' + after if last else ''}"
        params = {f"k{n}": v for n, v in enumerate(last)} if last else {}
        rows = conn.execute(
            text(f"SELECT {columns}, body FROM {table} {where} ORDER BY {columns} LIMIT {batch}"),
            params,
        ).all()
        if not rows:
            return done
        changes = []
        for row in rows:
            body = row[-1]
            if compress and not is_frame(body):
                new: bytes | str = pack_json(json_bytes(body))
            elif not compress and is_frame(body):
                plain = json_bytes(body)
                new = plain.decode() if sqlite else plain
            else:
                continue
            changes.append({"body": new, **{f"k{n}": v for n, v in enumerate(row[:-1])}})
        if changes:
            conn.execute(update, changes)
            done += len(changes)
        last = tuple(rows[-1][:-1])

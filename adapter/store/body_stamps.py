"""A resource body stored without what its row holds already (decision 0128): ``id``,
``meta.versionId`` and ``meta.lastUpdated`` are the row's ``id``, ``version_id`` and
``last_updated``; the stored frame leaves them out and every read puts them back, in the
same places, so that a client gets the same bytes as before (ETag and all).

Written only by ``save_resources``, for the bodies it stamps itself (``StampedBody``: its
``meta`` stamps are the row's own values) and only in the one shape ``_stamped`` gives
them (``resourceType``, ``id``, ``meta`` first; ``versionId`` and ``lastUpdated`` the last
two keys of ``meta``): any other body is stored whole, as before, and read as before.

The stored form: one byte ``STRIPPED`` and a zstd frame (the resource dictionary) of the
body with ``id`` left out and ``meta`` without its two stamps (left out when nothing else
is in it, else moved to right after ``resourceType``). A read gets it with the row's three
values before it (``ResourceBody.column_expression``: SQL, on every SELECT of the column,
ORM and Core alike): ``<id> <version_id> <microseconds since 1970> `` and the stored value.
A stored value read without them (a ``text()`` SELECT that forgot ``WITH_STAMPS_SQL``)
fails loudly: never a body without its id.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from adapter.store.body_codec import pack, unpack

STRIPPED = 0x01  # first byte of a stored body without its stamps (no frame, no JSON text)
_STRIPPED = b"\x01"
_FRAME, _TEXT = 0x28, 0x7B  # a zstd frame's first byte; plain JSON text's "{"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


class StampedBody(dict):  # type: ignore[type-arg]
    """A body ``save_resources`` stamped with its row's version and time: the only kind
    ``ResourceBody`` stores without them (a plain dict is stored whole)."""

    __slots__ = ()


class StampsMissingError(ValueError):
    """A body stored without its stamps was read without its row's values."""


def stripped(body: Any) -> bytes | None:
    """The stored form of a ``StampedBody`` without its id and stamps, or None when its
    shape is not the one ``_stamped`` gives (then it is stored whole)."""
    keys = iter(body)
    if next(keys, None) != "resourceType" or next(keys, None) != "id" or next(keys, None) != "meta":
        return None
    rid, meta = body["id"], body["meta"]
    if (
        rid.__class__ is not str
        or not rid
        or " " in rid
        or meta.__class__ is not dict
        or len(meta) < 2
    ):
        return None
    names = list(meta)
    if names[-2] != "versionId" or names[-1] != "lastUpdated":
        return None
    out: dict[str, Any] = {"resourceType": body["resourceType"]}
    if len(names) > 2:
        out["meta"] = {k: meta[k] for k in names[:-2]}
    for key, value in body.items():
        if key not in ("resourceType", "id", "meta"):
            out[key] = value
    return _STRIPPED + pack(out)


def format_micros(micros: int) -> str:
    """``format_instant`` of the instant ``micros`` microseconds after 1970 (UTC)."""
    return (_EPOCH + micros * _MICROSECOND).isoformat(timespec="milliseconds")


def read_body(value: bytes | bytearray | memoryview | str | None) -> Any:
    """A stored body as read: whole (a frame, or plain JSON text stored before migration
    0017), or the row's ``<id> <version> <micros> `` and a body without them."""
    if value is None:
        return None
    if value.__class__ is str:
        return unpack(value)  # SQLite, stored before migration 0017
    raw = value if value.__class__ is bytes else bytes(value)
    first = raw[0]
    if first == _FRAME or first == _TEXT:
        return unpack(raw)
    if first == STRIPPED:
        raise StampsMissingError(
            "a resource body stored without its id and meta was read without its row's "
            "values (decision 0128: select it through the column, or with WITH_STAMPS_SQL)"
        )
    rid, version, micros, rest = raw.split(b" ", 3)
    if rest[:1] != _STRIPPED:  # the SQL adds the values to stripped bodies only
        raise StampsMissingError("a resource body read with its row's values is not stripped")
    return _whole(unpack(rest[1:]), rid.decode(), version.decode(), format_micros(int(micros)))


def _whole(inner: dict[str, Any], rid: str, version: str, stamp: str) -> dict[str, Any]:
    """The body ``stripped`` made ``inner`` of, with the row's id, version and time."""
    items = iter(inner.items())
    rtype = next(items)
    meta = inner.get("meta")
    meta = {} if meta is None else dict(meta)
    meta["versionId"] = version
    meta["lastUpdated"] = stamp
    out: dict[str, Any] = {rtype[0]: rtype[1], "id": rid, "meta": meta}
    for key, item in items:
        if key != "meta":
            out[key] = item
    return out


def stored_whole(stored: bytes, rid: str, version_id: int, last_updated: datetime) -> bytes:
    """A stripped stored value written back whole (a frame of the same JSON text a read
    gives): migration 0052's downgrade, for the adapter versions before decision 0128."""
    inner = unpack(stored[1:])
    stamp = last_updated.astimezone(UTC).isoformat(timespec="milliseconds")
    return pack(_whole(inner, rid, str(version_id), stamp))


def rewrite_whole(conn: Any, table: str, *, batch: int = 1000) -> int:
    """Every stripped body of ``table`` (``resource`` or ``resource_version``) written back
    whole, in key order and batches, on ``conn`` in its transaction; returns the rows."""
    from sqlalchemy import text

    from adapter.store.types import UTCMicros

    keys = ("resource_type", "id") if table == "resource" else ("resource_type", "id", "version_id")
    columns = ", ".join(keys)
    test = "get_byte(body, 0) = 1" if conn.dialect.name == "postgresql" else "substr(body, 1, 1) = X'01'"
    done, after = 0, None
    while True:
        where = f"body IS NOT NULL AND {test}"
        params: dict[str, Any] = {}
        if after is not None:
            where += f" AND ({columns}) > ({', '.join(f':k{n}' for n in range(len(keys)))})"
            params = {f"k{n}": v for n, v in enumerate(after)}
        rows = conn.execute(
            text(
                f"SELECT {columns}, version_id AS g, last_updated, body FROM {table}"
                f" WHERE {where}"
                f" ORDER BY {columns} LIMIT {int(batch)}"
            ).columns(last_updated=UTCMicros()),
            params,
        ).all()
        if not rows:
            return done
        changes = [
            {
                "body": stored_whole(bytes(row.body), row.id, row.g, row.last_updated),
                **{f"k{n}": row[n] for n in range(len(keys))},
            }
            for row in rows
        ]
        if conn.dialect.name == "postgresql":  # one statement a batch, not one a row
            types = ["text", "text", "integer"][: len(keys)]
            arrays = ", ".join(f"CAST(:k{n} AS {t}[])" for n, t in enumerate(types))
            names = ", ".join(f"k{n}" for n in range(len(keys)))
            match = " AND ".join(f"t.{k} = v.k{n}" for n, k in enumerate(keys))
            conn.execute(
                text(
                    f"UPDATE {table} AS t SET body = v.body FROM unnest({arrays},"
                    f" CAST(:body AS bytea[])) AS v({names}, body) WHERE {match}"
                ),
                {
                    "body": [c["body"] for c in changes],
                    **{f"k{n}": [c[f"k{n}"] for c in changes] for n in range(len(keys))},
                },
            )
        else:
            match = " AND ".join(f"{k} = :k{n}" for n, k in enumerate(keys))
            conn.execute(text(f"UPDATE {table} SET body = :body WHERE {match}"), changes)
        done += len(changes)
        after = tuple(rows[-1][: len(keys)])


def with_stamps_sql(dialect: str, table: str = "") -> str:
    """The SQL of a body column read with its row's values (``text()`` readers: the column's
    ``column_expression`` does it for every other SELECT). ``table``: its alias, or ''."""
    t = f"{table}." if table else ""
    return stamps_sql(dialect, *(f"{t}{n}" for n in ("body", "id", "version_id", "last_updated")))


def stamps_sql(dialect: str, body: str, rid: str, version: str, updated: str) -> str:
    """``with_stamps_sql`` of these column expressions."""
    if dialect == "postgresql":
        return (
            f"CASE WHEN get_byte({body}, 0) = {STRIPPED} THEN convert_to({rid} || ' ' || "
            f"CAST({version} AS text) || ' ' || CAST(CAST(extract(epoch FROM {updated}) * 1000000 "
            f"AS bigint) AS text) || ' ', 'UTF8') || {body} ELSE {body} END"
        )
    # SQLite: last_updated is the integer microseconds (UTCMicros); || joins the bytes as
    # they are (text of the blob's bytes), CAST back to a BLOB keeps them
    return (
        f"CASE WHEN substr({body}, 1, 1) = X'01' THEN CAST({rid} || ' ' || {version} || ' ' || "
        f"{updated} || ' ' || {body} AS BLOB) ELSE {body} END"
    )

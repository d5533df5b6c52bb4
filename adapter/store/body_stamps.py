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
    inner = unpack(rest[1:])
    items = iter(inner.items())
    rtype = next(items)
    meta = inner.get("meta")
    meta = {} if meta is None else dict(meta)
    meta["versionId"] = version.decode()
    meta["lastUpdated"] = format_micros(int(micros))
    out: dict[str, Any] = {rtype[0]: rtype[1], "id": rid.decode(), "meta": meta}
    for key, item in items:
        if key != "meta":
            out[key] = item
    return out


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

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

import orjson
from zstandard import get_frame_parameters

from adapter.store.body_codec import _compressor, _decompressor, json_bytes, pack_json, unpack

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


_TYPE_HEAD = b'{"resourceType":"'
_META_HEAD = b',"meta":{'
_WITH_META = 0x02  # a stripped body whose meta keeps more than the stamps


def stripped(body: Any) -> bytes | None:
    """The stored form of a ``StampedBody`` without its id and stamps, or None when its
    shape is not the one ``_stamped`` gives (then it is stored whole).

    Cut from the body's JSON text (what ``pack`` compresses), so that a read splices the
    row's values back into the text and parses it once (``read_body``): ``STRIPPED`` and a
    zstd frame of ``{"resourceType":"T"<the rest>`` when ``meta`` held the stamps alone;
    else ``_WITH_META``, the offset of ``meta``'s closing brace in the text (2 bytes) and a
    frame of ``{"resourceType":"T","meta":{<meta without the stamps>}<the rest>``. The
    checks are on the text: the type and id appear in it unescaped (the id without a space,
    the row's values are read space-separated), the stamps end ``meta``."""
    keys = iter(body)
    if next(keys, None) != "resourceType" or next(keys, None) != "id" or next(keys, None) != "meta":
        return None
    rtype, rid, meta = body["resourceType"], body["id"], body["meta"]
    if rtype.__class__ is not str or rid.__class__ is not str or meta.__class__ is not dict:
        return None
    if " " in rid or not rid or len(meta) < 2:
        return None
    if len(meta) == 2 and (rtype in _PLAIN_TYPES or _plain_type(rtype)) and _plain(rid):
        made = _stamps_alone(body, meta)
        if made is not None:
            return made
    return _cut(body, rtype, rid, meta)


def _cut(body: Any, rtype: str, rid: str, meta: dict[str, Any]) -> bytes | None:
    """``stripped`` of a body of the right first keys, cut from its whole JSON text (any
    ``meta``, any type and id), or None."""
    names = list(meta)
    if names[-2] != "versionId" or names[-1] != "lastUpdated":
        return None
    version, stamp = meta["versionId"], meta["lastUpdated"]
    if version.__class__ is not str or stamp.__class__ is not str:
        return None
    text = orjson.dumps(body)
    head = len(_TYPE_HEAD) + len(rtype) + 1  # {"resourceType":"T"
    at = head + 7 + len(rid) + 1  # ,"id":"<id>"
    inner = at + len(_META_HEAD)
    others = len(orjson.dumps({k: meta[k] for k in names[:-2]})) - 2 if len(names) > 2 else 0
    stamps = (
        b'"versionId":' + orjson.dumps(version) + b',"lastUpdated":' + orjson.dumps(stamp) + b"}"
    )
    tail = inner + others + (1 if others else 0)
    if (
        text[at:inner] != _META_HEAD
        or text[head - 1 : at] != b'","id":"' + rid.encode() + b'"'
        or text[len(_TYPE_HEAD) : head - 1] != rtype.encode()
        or text[tail : tail + len(stamps)] != stamps
    ):
        return None
    if not others:
        return _STRIPPED + pack_json(text[:head] + text[tail + len(stamps) :])
    close = head + len(_META_HEAD) + others  # meta's closing brace, in the stored text
    if close > 0xFFFF:
        return None
    out = text[:head] + text[at : inner + others] + text[tail + len(stamps) - 1 :]
    return bytes((_WITH_META,)) + close.to_bytes(2, "big") + pack_json(out)


def _plain(text: str) -> bool:
    """Whether orjson writes ``text`` as it is, one byte a character (printable ASCII
    without ``"`` or a backslash): its place in the body's JSON text is then known."""
    return text.isascii() and text.isprintable() and '"' not in text and "\\" not in text


_PLAIN_TYPES: set[str] = set()  # resource types seen ``_plain`` (a few dozen at most)


def _plain_type(rtype: str) -> bool:
    """``_plain(rtype)``, remembered when true."""
    if not _plain(rtype):
        return False
    if len(_PLAIN_TYPES) < 256:
        _PLAIN_TYPES.add(rtype)
    return True


def _stamps_alone(body: Any, meta: dict[str, Any]) -> bytes | None:
    """``stripped`` of a body whose ``meta`` holds its two stamps alone (a translated
    resource's: the common case), its type and id plain (``_plain``): the JSON text of the
    body without ``id`` and ``meta`` is the text ``stripped`` cuts from the whole body's,
    made in one ``orjson.dumps`` without the checks on offsets (decision 0150). None: not
    that shape (``stripped`` goes its general way)."""
    names = iter(meta)
    if next(names) != "versionId" or next(names) != "lastUpdated":
        return None
    if meta["versionId"].__class__ is not str or meta["lastUpdated"].__class__ is not str:
        return None
    rest = dict(body)  # in the body's order: resourceType first
    del rest["id"], rest["meta"]
    return _STRIPPED + _compressor().compress(orjson.dumps(rest))  # ``pack_json``'s frame


_STAMP_TEXTS: dict[bytes, bytes] = {}


def _stamp_text(micros: bytes) -> bytes:
    """``format_micros`` as JSON text's bytes, remembered (a message's resources share it)."""
    found = _STAMP_TEXTS.get(micros)
    if found is None:
        if len(_STAMP_TEXTS) >= 4096:
            _STAMP_TEXTS.clear()
        found = _STAMP_TEXTS[micros] = format_micros(int(micros)).encode()
    return found


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
    if first in (_FRAME, _TEXT):
        return unpack(raw)
    if first in (STRIPPED, _WITH_META):
        raise StampsMissingError(
            "a resource body stored without its id and meta was read without its row's "
            "values (decision 0128: select it through the column, or with WITH_STAMPS_SQL)"
        )
    rid, version, micros, rest = raw.split(b" ", 3)
    stamp = _STAMP_TEXTS.get(micros) or _stamp_text(micros)
    if rest[0] == STRIPPED:  # the common form, spliced here (fewest Python steps)
        frame = rest[1:]
        text = _decompressor(get_frame_parameters(frame).dict_id).decompress(frame)
        head = text.index(b'"', 17) + 1  # {"resourceType":"T"
        return orjson.loads(
            b'%b,"id":"%b","meta":{"versionId":"%b","lastUpdated":"%b"}%b'
            % (text[:head], rid, version, stamp, text[head:])
        )
    if rest[0] != _WITH_META:  # the SQL adds the row's values to those only
        raise StampsMissingError("a resource body read with its row's values is not stripped")
    return orjson.loads(_whole_text(rest, rid, version, stamp))


def _whole_text(stored: bytes, rid: bytes, version: bytes, stamp: bytes) -> bytes:
    """The JSON text ``stripped`` cut ``stored`` from, with the row's id, version and time."""
    if stored[0] == STRIPPED:
        text = json_bytes(stored[1:])
        head = text.index(b'"', len(_TYPE_HEAD)) + 1  # {"resourceType":"T"
        return b"".join(
            (
                text[:head],
                b',"id":"',
                rid,
                b'","meta":{"versionId":"',
                version,
                b'","lastUpdated":"',
                stamp,
                b'"}',
                text[head:],
            )
        )
    close = int.from_bytes(stored[1:3], "big")
    text = json_bytes(stored[3:])
    head = text.index(b'"', len(_TYPE_HEAD)) + 1
    return b"".join(
        (
            text[:head],
            b',"id":"',
            rid,
            b'"',
            text[head:close],
            b',"versionId":"',
            version,
            b'","lastUpdated":"',
            stamp,
            b'"',
            text[close:],
        )
    )


def stored_whole(stored: bytes, rid: str, version_id: int, last_updated: datetime) -> bytes:
    """A stripped stored value written back whole (a frame of the same JSON text a read
    gives): migration 0052's downgrade, for the adapter versions before decision 0128."""
    stamp = last_updated.astimezone(UTC).isoformat(timespec="milliseconds")
    return pack_json(_whole_text(stored, rid.encode(), str(version_id).encode(), stamp.encode()))


def rewrite_whole(conn: Any, table: str, *, batch: int = 1000) -> int:
    """Every stripped body of ``table`` (``resource`` or ``resource_version``) written back
    whole, in key order and batches, on ``conn`` in its transaction; returns the rows."""
    from sqlalchemy import text

    from adapter.store.body_rewrite import KEYS, after_key
    from adapter.store.types import UTCMicros

    keys = KEYS[table]
    columns = ", ".join(keys)
    pg = conn.dialect.name == "postgresql"
    done, after = 0, None
    while True:
        past, params = after_key(keys, after)
        where = f"body IS NOT NULL AND {is_stripped_sql(conn.dialect.name)}{past}"
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
        if pg:  # one statement a batch, not one a row
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
            f"CASE WHEN {is_stripped_sql(dialect, body)} THEN convert_to({rid} || ' ' || "
            f"CAST({version} AS text) || ' ' || CAST(CAST(extract(epoch FROM {updated}) * 1000000 "
            f"AS bigint) AS text) || ' ', 'UTF8') || {body} ELSE {body} END"
        )
    # SQLite: last_updated is the integer microseconds (UTCMicros); || joins the bytes as
    # they are (text of the blob's bytes), CAST back to a BLOB keeps them
    return (
        f"CASE WHEN {is_stripped_sql(dialect, body)} THEN CAST({rid} || ' ' || "
        f"{version} || ' ' || {updated} || ' ' || {body} AS BLOB) ELSE {body} END"
    )


def is_stripped_sql(dialect: str, body: str = "body") -> str:
    """SQL true when the stored value ``body`` is a body without its stamps (its first byte
    ``STRIPPED`` or ``_WITH_META``; a frame starts 0x28, JSON text "{")."""
    if dialect == "postgresql":
        return f"get_byte({body}, 0) < 8"
    return f"substr({body}, 1, 1) IN (X'01', X'02')"

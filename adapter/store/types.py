"""Column types that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import zstandard
from sqlalchemy import BigInteger, DateTime, Integer, LargeBinary, SmallInteger, String, Text
from sqlalchemy.dialects.sqlite import DATETIME as SQLiteDateTime
from sqlalchemy.dialects.sqlite import JSON as SQLiteJSON
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import TypeDecorator, TypeEngine

from adapter.store import json_pack, raw_codec
from adapter.store.body_codec import AUDIT, FEATURES, json_bytes, pack, pack_json, unpack
from adapter.store.body_stamps import StampedBody, read_body, stamps_sql, stripped
from adapter.store.uuid_form import UUID_BYTES, canonical_uuid_bytes, uuid_of

# autoincrementing 64-bit keys; SQLite only autoincrements INTEGER PRIMARY KEY
BigId = BigInteger().with_variant(Integer(), "sqlite")

_Bind = Callable[[Any], Any]


def _bytes_as_they_are(impl: TypeEngine[Any], dialect: Dialect) -> bool:
    """psycopg 3 binds ``bytes`` as ``bytea`` itself, in a statement and in COPY alike:
    ``LargeBinary``'s processor, which wraps each value in ``psycopg.Binary`` (an object a
    value, then its dumper looked up), adds nothing to what is sent (decision 0083)."""
    return isinstance(impl, LargeBinary) and dialect.driver == "psycopg"


class _DirectBind:
    """A ``TypeDecorator`` whose bind processor is its own plain function of the value
    (``_binder``, chosen once per dialect), not ``TypeDecorator.bind_processor``'s closure
    calling ``process_bind_param(value, dialect)``: one Python call per value instead of
    two, for the types bound on every row the drain writes (decision 0083). The impl
    type's own processor, when it has one, still runs after it (but for
    ``_bytes_as_they_are``). ``process_bind_param`` stays for literal rendering and direct
    callers, and does the same."""

    impl_instance: TypeEngine[Any]

    def _binder(self, dialect: Dialect) -> _Bind:
        raise NotImplementedError

    def bind_processor(self, dialect: Dialect) -> _Bind:
        own = self._binder(dialect)
        after = self.impl_instance.bind_processor(dialect)
        if after is None or _bytes_as_they_are(self.impl_instance, dialect):
            return own
        return lambda value: after(own(value))

    def _reader(self) -> _Bind:
        """``process_result_value`` as a plain function (no type reads by dialect)."""
        raise NotImplementedError

    def result_processor(self, dialect: Dialect, coltype: object) -> _Bind:
        """Likewise for the values read: the impl type's processor first, if any."""
        own = self._reader()
        before = self.impl_instance.result_processor(dialect, coltype)
        if before is None:
            return own
        return lambda value: own(before(value))


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes in and out.

    PostgreSQL stores ``timestamptz``. SQLite has no zone support, so the UTC wall time is
    stored as fixed-width text, which keeps comparisons in SQL correct.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _micros(value: datetime) -> int:
    """An aware datetime as integer microseconds since 1970 UTC (SQLite's integer instants:
    decisions 0073 and 0074); they compare as the times do."""
    if value.tzinfo is None:
        raise ValueError("naive datetime given to a UTC column")
    return (value - _EPOCH) // _MICROSECOND


class _IntegerInstant(SQLiteDateTime):
    """SQLite: a column declared DATETIME, as the migrations made it (the schema is
    unchanged), whose values are passed to and from the driver as they are (integers)."""

    def bind_processor(self, dialect: Dialect) -> None:
        return None

    def result_processor(self, dialect: Dialect, coltype: object) -> None:
        return None


def _aware_utc(value: datetime | None) -> datetime | None:
    """``UTCDateTime``'s bound value on PostgreSQL: the aware instant in UTC."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("naive datetime given to a UTC column")
    return value.astimezone(UTC)


def _instant(value: Any) -> datetime | None:
    """``UTCMicros``' reading of a stored value: integer microseconds (SQLite), the UTC
    text stored before migration 0029 (SQLite), or a datetime (PostgreSQL)."""
    if value is None:
        return None
    if isinstance(value, int):
        return _EPOCH + value * _MICROSECOND
    if isinstance(value, str):  # SQLite, stored before migration 0029
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _micros_or_none(value: datetime | None) -> int | None:
    """``_micros``, None for None: ``UTCMicros``' bind processor on SQLite."""
    return None if value is None else _micros(value)


class UTCMicros(_DirectBind, UTCDateTime):
    """``UTCDateTime`` stored on SQLite as the integer microseconds since 1970 (8 bytes
    instead of 26 characters of text, in the row and in every index that holds it: decision
    0074, audit_record.recorded); ``timestamptz`` on PostgreSQL as before. Reads the text
    form too (rows of before migration 0029)."""

    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return _IntegerInstant()
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        return self._binder(dialect)(value)

    def _binder(self, dialect: Dialect) -> _Bind:
        if dialect.name == "sqlite":
            return _micros_or_none
        return _aware_utc

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        return _instant(value)

    def _reader(self) -> _Bind:
        return _instant


class IndexTime(UTCMicros):
    """A search index date (decision 0073): ``UTCMicros``, whose SQLite column migration
    0028 declared BIGINT (8 bytes where the UTC text took 26, in the row and in both date
    indexes). Every reader compares through the column, so the values bound are converted
    too."""

    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(BigInteger())
        return super().load_dialect_impl(dialect)


class NamedCode(_DirectBind, TypeDecorator[str]):
    """A value of a short fixed list of names stored as its small integer (``codes``: name
    -> number); bound and read as the name, so queries compare names and the database
    constants (``outbox.state``, decision 0079). An unknown name is refused before it is
    sent; a number without a name is read as it is (the column's CHECK keeps it out)."""

    impl = SmallInteger
    cache_ok = True

    def __init__(self, codes: dict[str, int]) -> None:
        super().__init__()
        self.codes = tuple(codes.items())  # hashable: the statement cache keys on it
        self._numbers = dict(codes)
        self._names = {number: name for name, number in codes.items()}

    def process_bind_param(self, value: str | None, dialect: Dialect) -> int | None:
        if value is None:
            return None
        try:
            return self._numbers[str(value)]
        except KeyError:
            raise ValueError(f"not one of {', '.join(self._numbers)}: {value!r}") from None

    def _binder(self, dialect: Dialect) -> _Bind:
        numbers = self._numbers

        def bind(value: str | None) -> int | None:
            if value is None:
                return None
            number = numbers.get(value) if value.__class__ is str else None
            # a StrEnum member, or an unknown name refused as before
            return self.process_bind_param(value, dialect) if number is None else number

        return bind

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        return self._names.get(int(value), value)

    def _reader(self) -> _Bind:
        names = self._names

        def read(value: Any) -> Any:
            return None if value is None else names.get(int(value), value)

        return read


class JSONText(TypeDecorator[Any]):
    """JSON kept as orjson text: identical on both databases, key order preserved.

    See docs/decisions/0002-store.md for why this and not JSONB.
    """

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return orjson.dumps(value).decode()

    def process_result_value(self, value: str | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        return orjson.loads(value)


def _text_or_frame(dialect: Dialect) -> TypeEngine[Any]:
    """TEXT on SQLite (a BLOB stays a BLOB whatever the affinity: no table rebuilt),
    ``bytea`` on PostgreSQL."""
    if dialect.name == "sqlite":
        return dialect.type_descriptor(Text())
    return dialect.type_descriptor(LargeBinary())


def _frame_or_none(value: Any) -> bytes | None:
    return None if value is None else pack(value)


def _unframed_or_none(value: bytes | str | None) -> Any:
    return None if value is None else unpack(value)


class CompressedJSON(_DirectBind, TypeDecorator[Any]):
    """A resource body: a zstd frame of its orjson text, compressed with a dictionary
    shipped in the package (adapter/store/body_codec.py, decision 0049). Reads plain JSON
    text too: the bodies stored before migration 0017.

    PostgreSQL stores ``bytea``. On SQLite the column keeps its declared TEXT: SQLite
    stores a BLOB as a BLOB whatever the column's affinity, and declaring BLOB would need
    the ``resource`` table rebuilt (the whole store copied, its cascading foreign keys off).
    Never compare these values in SQL: equal resources need not have equal frames.
    """

    impl = LargeBinary
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        return _text_or_frame(dialect)

    def process_bind_param(self, value: Any, dialect: Dialect) -> bytes | None:
        return _frame_or_none(value)

    def _binder(self, dialect: Dialect) -> _Bind:
        return _frame_or_none

    def _reader(self) -> _Bind:
        return _unframed_or_none

    def process_result_value(self, value: bytes | str | None, dialect: Dialect) -> Any:
        return _unframed_or_none(value)


# --- decision 0128: resource bodies without their row's id and stamps -------------------


def _resource_frame_or_none(value: Any) -> bytes | None:
    if value is None:
        return None
    if value.__class__ is StampedBody:
        made = stripped(value)
        if made is not None:
            return made
    return pack(value)


class _BodyWithStamps(FunctionElement[Any]):
    """A body column with its row's ``id``, ``version_id`` and ``last_updated`` before a
    stripped value (adapter/store/body_stamps.py): what every SELECT of it reads."""

    name = "body_with_stamps"
    inherit_cache = True


@compiles(_BodyWithStamps)
def _compile_with_stamps(element: _BodyWithStamps, compiler: Any, **kw: Any) -> str:
    parts = [compiler.process(c, **kw) for c in element.clauses]
    return stamps_sql(compiler.dialect.name, *parts)


class ResourceBody(CompressedJSON):
    """``resource.body`` (and ``resource_version.body``): ``CompressedJSON``, and a
    ``StampedBody`` stored without its id, versionId and lastUpdated, which every SELECT of
    the column puts back from the row (decision 0128). ``strip=False``: reads such bodies
    (a history row copied by SQL from a resource row), stores every body whole."""

    cache_ok = True

    def __init__(self, strip: bool = True) -> None:
        super().__init__()
        self.strip = strip

    def process_bind_param(self, value: Any, dialect: Dialect) -> bytes | None:
        return self._binder(dialect)(value)

    def _binder(self, dialect: Dialect) -> _Bind:
        return _resource_frame_or_none if self.strip else _frame_or_none

    def _reader(self) -> _Bind:
        return read_body

    def process_result_value(self, value: bytes | str | None, dialect: Dialect) -> Any:
        return read_body(value)

    def column_expression(self, colexpr: Any) -> Any:
        table = colexpr.table
        made = _BodyWithStamps(colexpr, table.c.id, table.c.version_id, table.c.last_updated)
        made.type = self  # read as this column: ``read_body``
        return made


# --- end decision 0128 ---------------------------------------------------------------


def _features_or_none(value: Any) -> bytes | None:
    return None if value is None else pack_json(orjson.dumps(value), FEATURES)


class FeaturesJSON(CompressedJSON):
    """The patient index's features of a record (identity_record.features, decision
    0082): ``CompressedJSON`` with a dictionary trained on them (names, IDs and the
    consortium's identifier systems in the same keys), read as any frame or plain text."""

    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> bytes | None:
        return _features_or_none(value)

    def _binder(self, dialect: Dialect) -> _Bind:
        return _features_or_none


class PackedBytes(TypeDecorator[bytes]):
    """An inbound message's exact bytes, stored compressed when that is smaller
    (adapter/store/raw_codec.py: zstd with a dictionary since decision 0092, zlib before,
    decision 0065); rows stored as they were read unchanged.
    Never compare these values in SQL: the stored form is not the message."""

    impl = LargeBinary
    cache_ok = True

    def process_bind_param(self, value: bytes | None, dialect: Dialect) -> bytes | None:
        return None if value is None else raw_codec.pack(bytes(value))

    def process_result_value(self, value: bytes | None, dialect: Dialect) -> bytes | None:
        return None if value is None else raw_codec.unpack(bytes(value))


class _DeclaredJSON(SQLiteJSON):
    """SQLite: a column declared JSON, as the migrations made it (the schema is unchanged),
    whose values are passed to and from the driver as they are (bytes, or older text)."""

    def dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        return self  # not adapted to SQLite's own JSON type, which would serialise them

    def bind_processor(self, dialect: Dialect) -> None:
        return None

    def result_processor(self, dialect: Dialect, coltype: object) -> None:
        return None


def _packed_or_none(value: Any) -> bytes | None:
    return None if value is None else json_pack.pack(value)


def _unpacked_or_none(value: bytes | str | None) -> Any:
    return None if value is None else json_pack.unpack(value)


class PackedJSON(_DirectBind, TypeDecorator[Any]):
    """An inbound message's ``issues`` and ``resources`` (decision 0081): the same JSON
    values in and out, stored in adapter/store/json_pack.py's smallest form. Reads the JSON
    text stored before migration 0033 too. PostgreSQL stores ``bytea``; on SQLite the
    column keeps its declared JSON (a BLOB stays a BLOB: no table rebuilt). Never compare
    these values in SQL: the stored form is not the text."""

    impl = LargeBinary
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return _DeclaredJSON()
        return dialect.type_descriptor(LargeBinary())

    def process_bind_param(self, value: Any, dialect: Dialect) -> bytes | None:
        return _packed_or_none(value)

    def _binder(self, dialect: Dialect) -> _Bind:
        return _packed_or_none

    def process_result_value(self, value: bytes | str | None, dialect: Dialect) -> Any:
        return _unpacked_or_none(value)

    def _reader(self) -> _Bind:
        return _unpacked_or_none


UNREADABLE = "\x00unreadable stored text: "


class CompressedText(TypeDecorator[str]):
    """An audit record's canonical JSON text (decision 0072): stored as a zstd frame made
    with the audit dictionary (adapter/store/body_codec.py), read back as the exact text
    the hash chain was computed over. Reads plain text too: the rows stored before
    migration 0027. Column as ``CompressedJSON``'s: TEXT on SQLite, ``bytea`` on PostgreSQL.

    A stored value that is not a frame this adapter can read (changed in the database)
    reads as ``UNREADABLE`` and its bytes in hex, never as an error: ``adapter audit
    verify`` then names the record as changed (its text no longer matches its hash)."""

    impl = LargeBinary
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        return _text_or_frame(dialect)

    def process_bind_param(self, value: str | None, dialect: Dialect) -> bytes | None:
        if value is None:
            return None
        return pack_json(value.encode(), AUDIT)

    def process_result_value(self, value: bytes | str | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        if isinstance(value, str):
            return value  # SQLite, stored before migration 0027
        try:
            return json_bytes(value).decode()
        except (ValueError, zstandard.ZstdError):  # UnicodeDecodeError and an unknown
            # dictionary are ValueErrors: a frame (or a dictionary id) changed in place
            return UNREADABLE + bytes(value).hex()


def digest_bytes(value: str | None) -> bytes | None:
    """``Digest``'s stored form: 64 lowercase hex characters as their bytes, any other text
    as its UTF-8 bytes."""
    if value is None:
        return None
    if len(value) == 64 and value == value.lower():
        try:
            return bytes.fromhex(value)
        except ValueError:
            pass
    return value.encode()


def digest_text(value: bytes | str | None) -> str | None:
    """``Digest``'s reading of a stored value."""
    if value is None or isinstance(value, str):
        return value
    stored = bytes(value)
    return stored.hex() if len(stored) == 32 else stored.decode(errors="replace")


class Digest(_DirectBind, TypeDecorator[str]):
    """A sha256 digest read and written as its 64 lowercase hex characters and stored as
    its 32 bytes (decision 0074: audit_record ``hash`` and ``prev_hash``, half the bytes).
    The chain is computed over the hex text as before; only the stored form changes.

    A value that is not 64 hex characters is stored as its UTF-8 bytes and a stored value
    that is not 32 bytes reads back as text (SQLite: as stored, a TEXT left by the rows of
    before migration 0029 or changed in the database), never as an error: ``adapter audit
    verify`` then finds the record whose hash no longer matches."""

    impl = LargeBinary
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        # SQLite: the column stays VARCHAR(64) (a BLOB is kept as a BLOB: no table rebuilt)
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(64))
        return dialect.type_descriptor(LargeBinary())

    def process_bind_param(self, value: str | None, dialect: Dialect) -> bytes | None:
        return digest_bytes(value)

    def _binder(self, dialect: Dialect) -> _Bind:
        return digest_bytes

    def process_result_value(self, value: bytes | str | None, dialect: Dialect) -> str | None:
        return digest_text(value)

    def _reader(self) -> _Bind:
        return digest_text


SHORT_DIGEST_BYTES = 16


def short_digest_bytes(value: str | None) -> bytes | None:
    """``ShortDigest``'s stored form: 32 lowercase hex characters as their 16 bytes (a full
    sha256's 64 as their first 16), any other text as its UTF-8 bytes."""
    if value is None:
        return None
    if len(value) in (2 * SHORT_DIGEST_BYTES, 64) and value == value.lower():
        try:  # parsed once: this binds every resource row written
            return bytes.fromhex(value)[:SHORT_DIGEST_BYTES]
        except ValueError:
            pass
    return value.encode()


def short_digest_text(value: bytes | str | None) -> str | None:
    """``ShortDigest``'s reading: 32 hex characters for a stored digest of 16 bytes or (a
    row written before, as ``Digest``) of 32, of which the first 16; other bytes as text."""
    if value is None:
        return None
    if isinstance(value, str):  # SQLite: a TEXT left by rows older than migration 0033
        packed = short_digest_bytes(value) if len(value) == 64 else None
        return value[: 2 * SHORT_DIGEST_BYTES] if packed and len(packed) == 16 else value
    stored = bytes(value)
    if len(stored) in (SHORT_DIGEST_BYTES, 32):
        return stored[:SHORT_DIGEST_BYTES].hex()
    return stored.decode(errors="replace")


class ShortDigest(Digest):
    """A digest that only has to tell a change (``resource.content_hash``, decision 0092):
    the first 128 bits of a sha256, read and written as 32 lowercase hex characters and
    stored as their 16 bytes. A value stored as ``Digest`` (32 bytes, before) reads as its
    first 16, so it compares equal to the short digest of the same content; no row is
    rewritten. The column's declared type is ``Digest``'s (no schema change)."""

    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> bytes | None:
        return short_digest_bytes(value)

    def _binder(self, dialect: Dialect) -> _Bind:
        return short_digest_bytes

    def process_result_value(self, value: bytes | str | None, dialect: Dialect) -> str | None:
        return short_digest_text(value)

    def _reader(self) -> _Bind:
        return short_digest_text


# the stored form of the ids bound lately: a message's id is bound on each of its resource,
# history and outbox rows and its audit records (~30 times), a correlation id likewise
_UUID_SEEN: dict[str, bytes] = {}
_UUID_SEEN_MAX = 4096  # emptied when full: the ids of the messages being written


def uuid_bytes(value: str) -> bytes:
    """``UuidText``'s stored form (also for the migrations): a UUID's 16 bytes; any other
    text as its UTF-8 bytes, after a NUL byte when they are 16 long (or start with one) so
    that no text reads back as a UUID."""
    seen = _UUID_SEEN.get(value)
    if seen is not None:
        return seen
    stored = _uuid_bytes(value)
    if len(_UUID_SEEN) >= _UUID_SEEN_MAX:
        _UUID_SEEN.clear()
    if value.__class__ is str:  # not a subclass, whose equal text could differ in kind
        _UUID_SEEN[value] = stored
    return stored


def _uuid_bytes_or_none(value: str | None) -> bytes | None:
    """``uuid_bytes``, None for None: ``UuidText``'s bind processor (one call a value)."""
    seen = _UUID_SEEN.get(value)  # type: ignore[arg-type]
    if seen is not None:
        return seen
    return None if value is None else uuid_bytes(value)


def _uuid_bytes(value: str) -> bytes:
    packed = canonical_uuid_bytes(value)
    if packed is not None:
        return packed
    data = value.encode()
    return b"\x00" + data if len(data) == UUID_BYTES or data.startswith(b"\x00") else data


def uuid_text(value: bytes | memoryview | str | None) -> str | None:
    """``UuidText``'s reading of a stored value (also for the migrations); a text is one the
    database held before the column was converted (SQLite)."""
    if value is None or isinstance(value, str):
        return value
    stored = bytes(value)
    if len(stored) == UUID_BYTES:
        return uuid_of(stored)
    return stored.removeprefix(b"\x00").decode(errors="replace")


class UuidText(_DirectBind, TypeDecorator[str]):
    """A text that is mostly a UUID: an inbound message's id (the uuid4 text the adapter
    gives) wherever it is stored (decision 0081), an audit record's correlation and request
    ids (decision 0082). Read and written as that text, stored as its 16 bytes (36
    characters before, in the row and in every index that holds it). Any other text (an id
    a client or a test chose, a ``_source`` searched for) is stored as its UTF-8 bytes and
    reads back as itself. The bytes of UUIDs order as their lowercase text does.

    PostgreSQL: ``bytea`` (not ``uuid``: the same values, and the same answer for a text
    that is no UUID, on both databases; 17 bytes with its header where ``uuid`` takes 16).
    SQLite: the column keeps its declared VARCHAR(``length``) and holds a BLOB (no table
    rebuilt). Values written in raw SQL must be bound with this type."""

    impl = LargeBinary
    cache_ok = True

    def __init__(self, length: int = 36) -> None:
        super().__init__()
        self.length = length  # SQLite's declared VARCHAR length (what the schema says)

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(self.length))
        return dialect.type_descriptor(LargeBinary())

    def process_bind_param(self, value: str | None, dialect: Dialect) -> bytes | None:
        return _uuid_bytes_or_none(value)

    def _binder(self, dialect: Dialect) -> _Bind:
        return _uuid_bytes_or_none

    def literal_processor(self, dialect: Dialect) -> Any:
        """The stored bytes as a literal (a statement compiled with its values, as the
        query plan tests print them)."""

        def render(value: str) -> str:
            data = uuid_bytes(value).hex()
            return f"X'{data}'" if dialect.name == "sqlite" else f"'\\x{data}'::bytea"

        return render

    def process_result_value(self, value: bytes | str | None, dialect: Dialect) -> str | None:
        return uuid_text(value)

    def _reader(self) -> _Bind:
        return uuid_text

"""``resource.patient_key`` stored in 16 bytes on PostgreSQL (decision 0105).

The column holds ``Patient/<id>``: the patient a resource belongs to (a Patient's own key
for a Patient). The adapter's patient ids are UUIDs, so on PostgreSQL the key is stored
as the UUID's 16 bytes (``bytea``: 17 with its header, 45 as text before, in the row and
in ``ix_resource_patient_key``). Any other text (an id a client or a test chose, another
type's key) is stored as its UTF-8 bytes, after a NUL byte when they are 16 long or start
with one, so that only a ``Patient/<canonical uuid>`` reads back as one. Read and written
as the text: every comparison through the column (``==``, ``IN``, ``IS NULL``) is
unchanged; the key is never ordered nor compared with another column. Values written in
raw SQL must be bound with this type.

SQLite: the column stays ``VARCHAR`` with the text (its store already meets the size
goal; nothing there changes, not even a call per value).
"""

from __future__ import annotations

from typing import Any, Final

from sqlalchemy import LargeBinary, String
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import TypeDecorator, TypeEngine

from adapter.store.uuid_form import UUID_BYTES, canonical_uuid_bytes, uuid_of

PREFIX: Final = "Patient/"
_CUT: Final = len(PREFIX)
_SEEN: dict[str, bytes] = {}
_SEEN_MAX: Final = 4096  # emptied when full: the keys of the batch being written
_READ: dict[bytes, str] = {}
_TYPE_ID: Final = 129  # "Patient/" and an id: the column's declared length
_UUID_RE: Final = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def key_bytes(value: str) -> bytes:
    """The stored form of a patient key (also for the migration's tests)."""
    seen = _SEEN.get(value)
    if seen is not None:
        return seen
    packed = canonical_uuid_bytes(value[_CUT:]) if value.startswith(PREFIX) else None
    if packed is None:
        data = value.encode()
        packed = b"\x00" + data if len(data) == UUID_BYTES or data.startswith(b"\x00") else data
    if len(_SEEN) >= _SEEN_MAX:
        _SEEN.clear()
    if value.__class__ is str:  # not a subclass, whose equal text could differ in kind
        _SEEN[value] = packed
    return packed


def _key_bytes_or_none(value: str | None) -> bytes | None:
    return None if value is None else key_bytes(value)


def key_text(value: bytes | memoryview | str | None) -> str | None:
    """The text of a stored patient key; a text is one stored before the migration."""
    if value is None or isinstance(value, str):
        return value
    stored = bytes(value)
    known = _READ.get(stored)
    if known is not None:
        return known
    if len(stored) == UUID_BYTES:
        text = PREFIX + uuid_of(stored)
    else:
        text = stored.removeprefix(b"\x00").decode(errors="replace")
    if len(_READ) >= _SEEN_MAX:
        _READ.clear()
    _READ[stored] = text
    return text


class PatientKey(TypeDecorator[str]):
    """``Patient/<id>`` in and out; on PostgreSQL stored as ``key_bytes`` gives it."""

    impl = String
    cache_ok = True

    def __init__(self, length: int) -> None:
        super().__init__(length)
        self.length = length

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(LargeBinary())
        return dialect.type_descriptor(String(self.length))

    def process_bind_param(self, value: str | None, dialect: Dialect) -> Any:
        return _key_bytes_or_none(value) if dialect.name == "postgresql" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> str | None:
        return key_text(value) if dialect.name == "postgresql" else value

    def bind_processor(self, dialect: Dialect) -> Any:
        """One plain call per value on PostgreSQL (bytes go to psycopg as they are), none
        on SQLite."""
        return _key_bytes_or_none if dialect.name == "postgresql" else None

    def result_processor(self, dialect: Dialect, coltype: object) -> Any:
        return key_text if dialect.name == "postgresql" else None

    def literal_processor(self, dialect: Dialect) -> Any:
        if dialect.name != "postgresql":
            return super().literal_processor(dialect)

        def render(value: str) -> str:
            return f"'\\x{key_bytes(value).hex()}'::bytea"

        return render


class stored_key(FunctionElement[str]):
    """The stored form of a patient key computed in SQL from a text expression (e.g.
    ``'Patient/' || patient_id`` of the patient index): the same bytes as ``key_bytes``
    on PostgreSQL, the text itself on SQLite. For comparing the column with keys the
    statement makes: ``patient_key IN (SELECT stored_key(...) ...)``."""

    type = PatientKey(_TYPE_ID)
    name = "stored_key"
    inherit_cache = True


@compiles(stored_key)
def _stored_key_text(element: stored_key, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.clauses, **kw))


@compiles(stored_key, "postgresql")
def _stored_key_bytes(element: stored_key, compiler: Any, **kw: Any) -> str:
    key = compiler.process(element.clauses, **kw)
    return (
        f"CASE WHEN {key} ~ '^Patient/{_UUID_RE}$'"
        f" THEN decode(replace(substr({key}, 9), '-', ''), 'hex')"
        f" WHEN octet_length({key}) = 16 THEN '\\x00'::bytea || convert_to({key}, 'UTF8')"
        f" ELSE convert_to({key}, 'UTF8') END"
    )

"""The patient index's ids and ``resource.patient_key`` in 16 bytes on PostgreSQL
(decision 0123).

Every column visibility compares holds one stored form on PostgreSQL: the identity
tables' record and person ids, ``care_relationship.person_id`` and the patient key as
the bare id (``Patient/`` implied). That form is ``UuidText``'s (``types.uuid_bytes``):
a UUID's 16 bytes, any other id as its UTF-8 bytes (after a NUL byte when 16 long), so
that one comparison serves a client's id too and visibility compares stored values
directly, with no ``'Patient/' ||`` for each record.

SQLite keeps its text (its store meets the size goal): the types are plain ``VARCHAR``
there, with no processor at all.
"""

from __future__ import annotations

from typing import Any, Final

from sqlalchemy import LargeBinary, String
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import TypeDecorator, TypeEngine

from adapter.store.types import _uuid_bytes_or_none, uuid_bytes, uuid_text
from adapter.store.uuid_form import UUID_BYTES, uuid_of

PREFIX: Final = "Patient/"
_CUT: Final = len(PREFIX)
_OTHER: Final = b"\x01"  # a key that is not ``Patient/<id>`` (none is written; kept exact)


class IndexId(TypeDecorator[str]):
    """A patient index id (a record's or a person's): ``UuidText``'s form on PostgreSQL,
    the text on SQLite. Values written in raw SQL must be bound with this type."""

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
        return _uuid_bytes_or_none(value) if dialect.name == "postgresql" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> str | None:
        return uuid_text(value) if dialect.name == "postgresql" else value

    def bind_processor(self, dialect: Dialect) -> Any:
        """One plain call per value on PostgreSQL, none on SQLite."""
        return _uuid_bytes_or_none if dialect.name == "postgresql" else None

    def result_processor(self, dialect: Dialect, coltype: object) -> Any:
        return uuid_text if dialect.name == "postgresql" else None

    def literal_processor(self, dialect: Dialect) -> Any:
        if dialect.name != "postgresql":
            return super().literal_processor(dialect)
        return lambda value: f"'\\x{uuid_bytes(value).hex()}'::bytea"


def key_bytes(value: str) -> bytes:
    """The stored form of a patient key ``Patient/<id>``: its id's ``UuidText`` form. A key
    that is not ``Patient/<id>`` (none is written) is kept exactly as 0x01 and its text,
    after a NUL byte when that is 16 bytes long (16 bytes are always a UUID)."""
    if value.startswith(PREFIX):
        return uuid_bytes(value[_CUT:])
    other = _OTHER + value.encode()
    return b"\x00" + other if len(other) == UUID_BYTES else other


def _key_bytes_or_none(value: str | None) -> bytes | None:
    return None if value is None else key_bytes(value)


def key_text(value: bytes | memoryview | str | None) -> str | None:
    """The text of a stored patient key (a FHIR id never starts with 0x01)."""
    if value is None or isinstance(value, str):
        return value
    stored = bytes(value)
    if len(stored) == UUID_BYTES:
        return PREFIX + uuid_of(stored)
    rest = stored.removeprefix(b"\x00")
    if rest[:1] == _OTHER:
        return rest[1:].decode(errors="replace")
    return PREFIX + rest.decode(errors="replace")


class PatientKey(IndexId):
    """``resource.patient_key``: ``Patient/<id>`` in and out; on PostgreSQL stored as the
    bare id in ``IndexId``'s form (so it equals the index's ids), the text on SQLite."""

    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> Any:
        return _key_bytes_or_none(value) if dialect.name == "postgresql" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> str | None:
        return key_text(value) if dialect.name == "postgresql" else value

    def bind_processor(self, dialect: Dialect) -> Any:
        return _key_bytes_or_none if dialect.name == "postgresql" else None

    def result_processor(self, dialect: Dialect, coltype: object) -> Any:
        return key_text if dialect.name == "postgresql" else None

    def literal_processor(self, dialect: Dialect) -> Any:
        if dialect.name != "postgresql":
            return String(self.length).literal_processor(dialect)
        return lambda value: f"'\\x{key_bytes(value).hex()}'::bytea"


class key_of_record(FunctionElement[str]):
    """The patient key of an index id expression, in the column's stored form: the id
    itself on PostgreSQL (the key is stored as the bare id), ``'Patient/' || id`` on
    SQLite. For ``patient_key IN (SELECT key_of_record(...) ...)`` (visibility)."""

    name = "key_of_record"
    inherit_cache = True
    type = PatientKey(129)


@compiles(key_of_record)
def _key_of_record_text(element: key_of_record, compiler: Any, **kw: Any) -> str:
    (record,) = element.clauses
    return "('Patient/' || " + compiler.process(record, **kw) + ")"


@compiles(key_of_record, "postgresql")
def _key_of_record_pg(element: key_of_record, compiler: Any, **kw: Any) -> str:
    (record,) = element.clauses
    return str(compiler.process(record, **kw))


# ``types.uuid_bytes`` in SQL (as migration 0050 converts the columns): a canonical UUID's
# 16 bytes, other text its UTF-8 bytes after a NUL byte when 16 long (a PostgreSQL text
# never holds a NUL byte)
_UUID_RE: Final = "'^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'"


class key_of_text_id(FunctionElement[str]):
    """The patient key of a text id expression (``resource.id`` of a Patient), in the
    column's stored form: ``uuid_bytes`` computed in SQL on PostgreSQL (a regular
    expression a row: for small sets only, e.g. the console's Patients found by an
    identifier; visibility compares stored ids instead), ``'Patient/' || id`` on SQLite."""

    name = "key_of_text_id"
    inherit_cache = True
    type = PatientKey(129)


@compiles(key_of_text_id)
def _key_of_text_id_text(element: key_of_text_id, compiler: Any, **kw: Any) -> str:
    (value,) = element.clauses
    return "('Patient/' || " + compiler.process(value, **kw) + ")"


@compiles(key_of_text_id, "postgresql")
def _key_of_text_id_pg(element: key_of_text_id, compiler: Any, **kw: Any) -> str:
    (value,) = element.clauses
    v = compiler.process(value, **kw)
    raw = f"convert_to({v}, 'UTF8')"
    return (
        f"(CASE WHEN {v} ~ {_UUID_RE} THEN decode(replace({v}, '-', ''), 'hex') "
        f"WHEN octet_length({raw}) = 16 "
        f"THEN '\\x00'::bytea || {raw} ELSE {raw} END)"
    )

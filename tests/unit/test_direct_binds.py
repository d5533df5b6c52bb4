"""The column types' bind processors are plain functions (decision 0083) that store exactly
what ``process_bind_param`` stores, on SQLite and PostgreSQL, for every kind of value each
type takes (and refuse what it refuses); a UUID's canonical text is recognised as the
regular expression of decisions 0081 and 0082 recognised it."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta, timezone
from enum import StrEnum
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from adapter.store.audit_codes import Coded
from adapter.store.models import OUTBOX_STATE_CODES, OutboxState
from adapter.store.types import (
    CompressedJSON,
    Digest,
    FeaturesJSON,
    IndexTime,
    NamedCode,
    PackedJSON,
    UTCMicros,
    UuidText,
    uuid_bytes,
)
from adapter.store.uuid_form import canonical_uuid_bytes

_PSYCOPG = postgresql.psycopg.dialect
# the psycopg dialect with its driver loaded too: LargeBinary's own processor then exists
DIALECTS: list[Dialect] = [
    sqlite.dialect(),
    _PSYCOPG(),
    _PSYCOPG(dbapi=_PSYCOPG.import_dbapi()),
]
UUID = "3f1c9a52-7d4e-4b8a-9c21-5e6f7a8b9c0d"
INSTANTS = [
    datetime(2026, 12, 5, 20, 0, 0, 123456, tzinfo=UTC),
    datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(2026, 12, 6, 4, 0, tzinfo=timezone(timedelta(hours=8))),
]
# (type, values it binds)
CASES: list[tuple[TypeDecorator[Any], list[Any]]] = [
    (
        UuidText(),
        [None, UUID, UUID.upper(), "x" * 16, "\x00abc", "msg-1", "", UUID[:-1] + "-", UUID + " "],
    ),
    (Digest(), [None, "ab" * 32, "AB" * 32, "g" * 64, "a" * 63, "", "ab" * 31 + " a"]),
    (UTCMicros(), [None, *INSTANTS]),
    (IndexTime(), [None, *INSTANTS]),
    (NamedCode(OUTBOX_STATE_CODES), [None, "pending", "dead", OutboxState.IN_FLIGHT]),
    (Coded(32, "action"), [None, "message.stored", "x", "\x1fx", "other.action", ""]),
    (
        PackedJSON(),
        [None, [], [f"Patient/{UUID}"], [f"Patient/{UUID.upper()}"], [{"a": 1}], "text"],
    ),
    (CompressedJSON(), [None, {"resourceType": "Patient", "id": "p"}, []]),
    (FeaturesJSON(), [None, {"name": "张三", "ids": ["110101"]}]),
]


def _param(kind: TypeDecorator[Any], dialect: Dialect, value: Any) -> Any:
    return kind.dialect_impl(dialect).process_bind_param(value, dialect)


@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: f"{d.name}-{d.dbapi is not None}")
@pytest.mark.parametrize("kind, values", CASES, ids=[type(k).__name__ for k, _ in CASES])
def test_the_bind_processor_stores_what_process_bind_param_stores(
    kind: TypeDecorator[Any], values: list[Any], dialect: Dialect
) -> None:
    bind = kind.dialect_impl(dialect).bind_processor(dialect)
    assert bind is not None
    for value in values * 2:  # twice: what a type remembers changes nothing
        assert bind(value) == _param(kind, dialect, value), value


@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: f"{d.name}-{d.dbapi is not None}")
def test_refused_values_are_refused_by_both(dialect: Dialect) -> None:
    named = NamedCode(OUTBOX_STATE_CODES)
    bind = named.dialect_impl(dialect).bind_processor(dialect)
    with pytest.raises(ValueError, match="not one of"):
        bind("sent")
    with pytest.raises(ValueError, match="not one of"):
        _param(named, dialect, "sent")
    instant = UTCMicros().dialect_impl(dialect).bind_processor(dialect)
    with pytest.raises(ValueError, match="naive"):
        instant(datetime(2026, 12, 5, 20, 0))


def test_a_str_subclass_is_stored_as_its_text_and_not_remembered() -> None:
    class Name(StrEnum):
        ID = UUID

    assert uuid_bytes(Name.ID) == uuid.UUID(UUID).bytes
    assert uuid_bytes("msg-2") == b"msg-2"
    assert uuid_bytes("msg-2") == b"msg-2"


_REGEX = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _by_regex(value: str) -> bytes | None:
    if len(value) == 36 and _REGEX.fullmatch(value):
        return bytes.fromhex(value.replace("-", ""))
    return None


@given(
    st.uuids().map(str),
    st.lists(st.tuples(st.integers(0, 36), st.sampled_from("-Aaf09g \t\u0660\u00e9")), max_size=3),
)
def test_canonical_uuid_bytes_recognises_what_the_regular_expression_did(
    text: str, edits: list[tuple[int, str]]
) -> None:
    chars = list(text)
    for at, char in edits:
        if at < len(chars):
            chars[at] = char
        else:
            chars.append(char)
    edited = "".join(chars)
    assert canonical_uuid_bytes(edited) == _by_regex(edited)


@pytest.mark.parametrize(
    "text",
    [UUID, UUID.upper(), UUID.replace("-", ""), f"{{{UUID}}}", UUID[:35] + "-", " " + UUID[1:]]
    + [UUID[:at] + " " + UUID[at + 1 :] for at in (0, 7, 9, 35)]
    + ["0" * 8 + "-0000-0000-0000-" + "0" * 12, "-" * 36, UUID[:8] + "--" + UUID[10:]],
)
def test_canonical_uuid_bytes_cases(text: str) -> None:
    assert canonical_uuid_bytes(text) == _by_regex(text)


# (type, stored values it reads: every form, None, the older texts, bytes and memoryviews)
READS: list[tuple[TypeDecorator[Any], list[Any]]] = [
    (UuidText(), [None, uuid.UUID(UUID).bytes, memoryview(uuid.UUID(UUID).bytes), b"msg", "t"]),
    (Digest(), [None, bytes(32), memoryview(bytes(range(32))), b"abc", "ab" * 32]),
    (
        UTCMicros(),
        [
            None,
            0,
            -1,
            1_765_000_000_123_456,
            "2026-12-05 20:00:00",
            *INSTANTS,
            datetime(2026, 1, 1),
        ],
    ),
    (NamedCode(OUTBOX_STATE_CODES), [None, 1, 4, 9, "2"]),
    (Coded(32, "action"), [None, "0", "\x1fx", "other.action", "~"]),
    (PackedJSON(), [None, b"[]", '{"a": 1}', _param(PackedJSON(), DIALECTS[0], [UUID])]),
    (CompressedJSON(), [None, '{"a": 1}', _param(CompressedJSON(), DIALECTS[0], {"a": [1]})]),
]


@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: f"{d.name}-{d.dbapi is not None}")
@pytest.mark.parametrize("kind, values", READS, ids=[type(k).__name__ for k, _ in READS])
def test_the_result_processor_reads_what_process_result_value_reads(
    kind: TypeDecorator[Any], values: list[Any], dialect: Dialect
) -> None:
    impl = kind.dialect_impl(dialect)
    read = impl.result_processor(dialect, None)
    assert read is not None
    for value in values:
        assert read(value) == impl.process_result_value(value, dialect), value


def test_bytes_go_to_psycopg_as_bytes() -> None:
    """No ``psycopg.Binary`` wrapper a value: psycopg binds bytes as bytea itself (the
    stored bytes are the same: the PostgreSQL pass reads every type back)."""
    dialect = DIALECTS[2]
    for kind, value in ((UuidText(), UUID), (Digest(), "ab" * 32), (PackedJSON(), [1])):
        bound = kind.dialect_impl(dialect).bind_processor(dialect)(value)
        assert type(bound) is bytes

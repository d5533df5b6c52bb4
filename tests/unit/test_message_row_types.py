"""The stored forms of decision 0081: packed issues and references, message ids in 16
bytes. Every value reads back exactly; the forms are the small ones where they apply."""

from __future__ import annotations

import uuid

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapter.store import body_codec, json_pack
from adapter.store.body_codec import ZSTD_MAGIC
from adapter.store.types import uuid_bytes, uuid_text

REFS = [
    "Organization/4fc3eae3-7ac6-5a86-9d1c-b18f5332cb54",
    "Patient/948e5ccd-169d-55b2-b721-e4c18b68738a",
    "Observation/7ddbc9c8-2561-590b-99d8-cbe274df0599",
    "Observation/fd31d206-f25f-558d-aef3-7b4988e40f3f",
    "DiagnosticReport/b75991b5-dd59-5cb7-9218-98f3c7407bdb",
]
ISSUES = [
    {"severity": "information", "code": "informational", "diagnostics": d, "location": f"OBX[{n}]"}
    for n, d in enumerate(["field not read by any mapping rule"] * 6)
]


def test_references_take_their_compact_form_and_read_back() -> None:
    stored = json_pack.pack(REFS)
    assert len(stored) < 16 * len(REFS) + 60 < len(orjson.dumps(REFS))
    assert json_pack.unpack(stored) == REFS


def test_issues_are_a_frame_and_read_back() -> None:
    stored = json_pack.pack(ISSUES)
    assert stored.startswith(ZSTD_MAGIC) and len(stored) * 3 < len(orjson.dumps(ISSUES))
    assert json_pack.unpack(stored) == ISSUES


@pytest.mark.parametrize(
    "value",
    [
        [],
        {},
        None,
        ["Patient/ABC"],
        ["Patient/948E5CCD-169D-55B2-B721-E4C18B68738A"],  # not canonical: the JSON way
        [*REFS, "Observation/not-a-uuid"],
        [1, "x"],
        "Observation/948e5ccd-169d-55b2-b721-e4c18b68738a",
    ],
)
def test_any_json_value_reads_back(value: object) -> None:
    assert json_pack.unpack(json_pack.pack(value)) == value


def test_older_text_reads() -> None:
    assert json_pack.unpack('[{"a": 1}]') == [{"a": 1}]  # SQLite before 0033
    assert json_pack.unpack(b'["Patient/p1"]') == ["Patient/p1"]  # PostgreSQL after ALTER


@given(st.text(max_size=40))
def test_any_message_id_reads_back(value: str) -> None:
    assert uuid_text(uuid_bytes(value)) == value


def test_a_uuid_is_its_16_bytes_and_other_text_never_reads_as_one() -> None:
    made = str(uuid.uuid4())
    assert uuid_bytes(made) == uuid.UUID(made).bytes
    assert len(uuid_bytes("sixteen-chars-id")) == 17  # a NUL byte first
    assert uuid_text(uuid_bytes("sixteen-chars-id")) == "sixteen-chars-id"
    assert uuid_bytes(made.upper()) == made.upper().encode()  # not canonical: as text


def test_uuid_bytes_order_as_their_text() -> None:
    ids = [str(uuid.uuid4()) for _ in range(200)]
    assert sorted(ids, key=uuid_bytes) == sorted(ids)


@pytest.mark.parametrize(
    "value",
    [[], {}, None, 0, "", ["a"], [1, 2, 3, 4], {"a": 1}, "x" * 10, "x" * 11, [[[]]], True],
)
def test_a_short_value_is_stored_as_its_text_without_trying_a_frame(value: object) -> None:
    """Decision 0143: a text of 12 bytes or less is never longer than its zstd frame, so
    ``pack`` keeps it as it is without compressing it: the smaller of the two, as before."""
    plain = orjson.dumps(value)
    frame = body_codec.pack_json(plain)
    assert json_pack.pack(value) == (frame if len(frame) < len(plain) else plain)
    if len(plain) <= 12:
        assert len(frame) > len(plain)
    assert json_pack.unpack(json_pack.pack(value)) == value

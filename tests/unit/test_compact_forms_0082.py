"""The stored forms of decision 0082: every text reads back as written, one stored form per
text (equality in SQL holds), and a changed stored value reads as something else, never as
an error."""

from __future__ import annotations

import pytest
from sqlalchemy.dialects import postgresql, sqlite

from adapter.store.audit_codes import ESCAPE, VOCABULARIES, Coded, decode, encode
from adapter.store.types import UuidText, uuid_stored, uuid_text

U = "8f14e45f-ceea-467f-a1c4-1f5e3b9a1c2d"
TEXTS = [U, U.upper(), "{" + U + "}", "sixteen-chars-16", "fifteen-chars15", "", "x", "请求-1", "ÿ"]


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_uuid_text_round_trips_and_is_one_to_one(dialect: str) -> None:
    stored = [uuid_stored(t, dialect) for t in TEXTS]
    assert [uuid_text(s) for s in stored] == TEXTS
    assert len({repr(s) for s in stored}) == len(TEXTS)
    assert stored[0] == bytes.fromhex(U.replace("-", ""))  # 16 bytes
    if dialect == "postgresql":  # only a UUID is 16 bytes there
        assert all(len(s) != 16 for s in stored[1:])
        assert stored[3] == b"sixteen-chars-16\xff"
    else:  # SQLite: anything else stays text
        assert stored[1:] == TEXTS[1:]


def test_uuid_text_column_binds_the_stored_form() -> None:
    column = UuidText()
    assert column.process_bind_param(U, sqlite.dialect()) == uuid_stored(U, "sqlite")
    assert column.process_bind_param("a" * 16, postgresql.dialect()) == b"a" * 16 + b"\xff"
    assert column.process_result_value(b"\x01\x02", postgresql.dialect()) == "\x01\x02"


@pytest.mark.parametrize("vocabulary", sorted(VOCABULARIES))
def test_codes_round_trip_and_other_texts_keep_theirs(vocabulary: str) -> None:
    values = [*VOCABULARIES[vocabulary], "", "0", "Z", ESCAPE, ESCAPE + "x", "other.action"]
    stored = [encode(vocabulary, v) for v in values]
    assert [decode(vocabulary, s) for s in stored] == values
    assert len(set(stored)) == len(values)
    assert all(len(s) == 1 for s in stored[: len(VOCABULARIES[vocabulary])])
    assert decode(vocabulary, "~") == "~"  # not a code (changed in place): as it is


def test_the_receipt_is_code_zero_and_the_lists_only_grow() -> None:
    # stored codes name these positions for ever: the first ones must never move
    assert VOCABULARIES["action"][:3] == (
        "message.received",
        "message.translated",
        "message.stored",
    )
    assert VOCABULARIES["outcome"] == ("success", "warning", "failure")
    assert VOCABULARIES["channel"][:5] == ("http", "mllp", "file-drop", "fhir-pull", "cli")
    assert Coded(40, "action").process_bind_param("message.received", sqlite.dialect()) == "0"

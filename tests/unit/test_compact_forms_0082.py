"""The stored forms of decision 0082: every text reads back as written, one stored form per
text (equality in SQL holds), and a changed stored value reads as something else, never as
an error."""

from __future__ import annotations

import pytest
from sqlalchemy.dialects import postgresql, sqlite

from adapter.store.audit_codes import ESCAPE, VOCABULARIES, Coded, decode, encode
from adapter.store.types import UuidText, uuid_bytes, uuid_text

U = "8f14e45f-ceea-467f-a1c4-1f5e3b9a1c2d"
TEXTS = [U, U.upper(), "{" + U + "}", "sixteen-chars-16", "fifteen-chars15", "", "x", "请求-1", "ÿ"]


def test_uuid_text_round_trips_and_is_one_to_one() -> None:
    stored = [uuid_bytes(t) for t in TEXTS]
    assert [uuid_text(s) for s in stored] == TEXTS
    assert len(set(stored)) == len(TEXTS)
    assert stored[0] == bytes.fromhex(U.replace("-", ""))  # 16 bytes
    assert all(len(s) != 16 for s in stored[1:])  # only a UUID is 16 bytes
    assert stored[3] == b"\x00sixteen-chars-16"
    assert uuid_text("held as text") == "held as text"  # a value written before 0033


@pytest.mark.parametrize("dialect", [sqlite.dialect(), postgresql.dialect()])
def test_uuid_text_column_binds_the_stored_form(dialect: object) -> None:
    column = UuidText(64)
    assert column.process_bind_param(U, dialect) == uuid_bytes(U)
    assert column.process_bind_param("a" * 16, dialect) == b"\x00" + b"a" * 16
    assert column.process_result_value(b"\x01\x02", dialect) == "\x01\x02"


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

"""inbound_message.raw stored zlib-compressed when smaller (decision 0065): every reader gets
the exact bytes received, rows stored before (as received) read unchanged, migration 0023
keeps older rows that happen to start with the mark readable, and bytes changed in the
database are still refused by the sha256 check."""

from __future__ import annotations

import hashlib
import os
import zlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine, bindparam, select, text
from sqlalchemy.orm import Session, sessionmaker

from adapter.errors import AlteredBytesError
from adapter.pipeline import Receipt
from adapter.store import make_engine, migrate
from adapter.store import session_factory as make_factory
from adapter.store.engine import downgrade
from adapter.store.messages import get_message, verified_raw
from adapter.store.models import InboundMessage
from adapter.store.raw_codec import MARK, pack, unpack
from adapter.store.types import UuidText
from tests.integration.connector_helpers import example_pipeline

# a message's id bound as its column stores it (16 bytes, decision 0081)
_BY_ID = " WHERE id = :i"
_ID = bindparam("i", type_=UuidText())

ROOT = Path(__file__).resolve().parents[2]
CBC = ROOT / "fixtures" / "hl7v2" / "oru" / "shiqiao-lis" / "cbc-18-st.hl7"


@given(st.binary(max_size=4096))
def test_any_bytes_come_back_exactly(raw: bytes) -> None:
    assert unpack(pack(raw)) == raw
    assert unpack(pack(MARK + raw)) == MARK + raw  # even those that look packed


def test_text_is_packed_and_what_does_not_shrink_stays_as_received() -> None:
    message = CBC.read_bytes()
    packed = pack(message)
    assert packed.startswith(MARK + b"z") and len(packed) < 0.7 * len(message)
    noise = os.urandom(600)
    assert pack(noise) == noise  # incompressible and unmarked: stored as received
    assert unpack(b"MSH|^~\\&|old row") == b"MSH|^~\\&|old row"  # a row stored before 0065
    assert unpack(MARK + b"z" + b"not a zlib stream") == MARK + b"z" + b"not a zlib stream"


def test_a_stored_message_is_smaller_and_every_reader_gets_its_bytes(
    session_factory: sessionmaker[Session], engine: Engine
) -> None:
    received = CBC.read_bytes()
    result = example_pipeline(session_factory).ingest(received, Receipt("shiqiao-lis", "cli"))
    assert result.accepted and result.message_id
    with engine.connect() as conn:  # what the database holds
        stored = bytes(
            conn.execute(
                text("SELECT raw FROM inbound_message" + _BY_ID).bindparams(_ID),
                {"i": result.message_id},
            ).scalar_one()
        )
    assert stored.startswith(MARK) and len(stored) < len(received)
    with session_factory() as session:
        message = get_message(session, result.message_id)
        assert message is not None and message.size == len(received)
        assert verified_raw(message) == received
        # a Core read of the column (fhir_pull's) decodes too
        assert session.scalar(select(InboundMessage.raw)) == received
    # the same bytes again: the duplicate check (sha256 of the received bytes) answers
    again = example_pipeline(session_factory).ingest(received, Receipt("shiqiao-lis", "cli"))
    assert again.duplicate and again.message_id == result.message_id
    # the packed form changed in place: refused, never served
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE inbound_message SET raw = :r" + _BY_ID).bindparams(_ID),
            {"r": stored[:-8] + b"\x00" * 8, "i": result.message_id},
        )
    with session_factory() as session:
        message = get_message(session, result.message_id)
        assert message is not None
        with pytest.raises(AlteredBytesError):
            verified_raw(message)


def _insert_at_0022(engine: Engine, message_id: str, raw: bytes) -> None:
    # as 0022 wrote it: a text statement (the head's column types would write the forms of
    # 0023 and 0033: packed bytes, a 16-byte id, a 32-byte digest, packed JSON)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO inbound_message (id, source_system, received_at, sha256, size, "
                "raw, status, issues, resources, attempts) VALUES (:id, 'lis', "
                "CURRENT_TIMESTAMP, :sha, :size, :raw, 'processed', '[]', '[]', 1)"
            ),
            {
                "id": message_id,
                "sha": hashlib.sha256(raw).hexdigest(),
                "size": len(raw),
                "raw": raw,
            },
        )


def test_0023_keeps_older_rows_readable_both_ways(blank_database_url: str) -> None:
    engine = make_engine(blank_database_url)
    try:
        migrate(engine, "0022")
        plain = b"MSH|^~\\&|LIS|" + b"x" * 400
        # received bytes that look exactly like a packed value (without 0023: read as b"inner")
        marked = MARK + b"z" + zlib.compress(b"inner")
        _insert_at_0022(engine, "m-plain", plain)
        _insert_at_0022(engine, "m-marked", marked)
        migrate(engine)
        factory = make_factory(engine)
        with factory() as session:
            for message_id, raw in (("m-plain", plain), ("m-marked", marked)):
                message = get_message(session, message_id)
                assert message is not None and verified_raw(message) == raw
        with factory.begin() as session:  # a new row at head: packed
            session.add(
                InboundMessage(
                    id="m-new",
                    source_system="ris",
                    received_at=get_message(session, "m-plain").received_at,  # type: ignore[union-attr]
                    sha256=hashlib.sha256(plain).hexdigest(),
                    size=len(plain),
                    raw=plain,
                )
            )
        downgrade(engine, "0022")
        with engine.connect() as conn:
            kept = dict(conn.execute(text("SELECT id, raw FROM inbound_message")).all())
        assert {k: bytes(v) for k, v in kept.items()} == {
            "m-plain": plain,
            "m-marked": marked,
            "m-new": plain,
        }
    finally:
        engine.dispose()

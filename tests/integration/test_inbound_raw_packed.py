"""inbound_message.raw stored compressed when smaller (decision 0065; a zstd frame with the
HL7 v2 dictionary since decision 0092, zlib before): every reader gets
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
    assert packed.startswith(MARK + b"d") and len(packed) < 0.7 * len(message)
    noise = os.urandom(600)
    assert pack(noise) == noise  # incompressible and unmarked: stored as received
    assert unpack(b"MSH|^~\\&|old row") == b"MSH|^~\\&|old row"  # a row stored before 0065
    assert unpack(MARK + b"z" + b"not a zlib stream") == MARK + b"z" + b"not a zlib stream"
    assert unpack(MARK + b"d" + b"not a zstd frame") == MARK + b"d" + b"not a zstd frame"
    # a row written before decision 0092 (zlib) reads as ever
    assert unpack(MARK + b"z" + zlib.compress(message, 6)) == message


def test_the_dictionary_beats_zlib_on_lab_messages_it_was_not_trained_on() -> None:
    """fixtures/hl7v2/oru is left out of the dictionary's samples (it is what
    bench/bench_ingest.py sends): each of its messages stored smaller than zlib stored it,
    by a fifth or more over all of them (decision 0092)."""
    messages = [p.read_bytes() for p in sorted((ROOT / "fixtures/hl7v2/oru").glob("*/*.hl7"))]
    assert len(messages) >= 20
    now = [len(pack(m)) for m in messages]
    before = [len(MARK + b"z" + zlib.compress(m, 6)) for m in messages]
    assert all(a < b for a, b in zip(now, before, strict=True))
    assert sum(now) < 0.8 * sum(before)
    assert all(unpack(pack(m)) == m for m in messages)


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


def test_0040_down_stores_the_zstd_rows_as_the_code_before_reads_them(
    blank_database_url: str,
) -> None:
    """Migration 0040's downgrade: the rows written with the dictionary (``d``) become zlib
    (``z``), which the code of 0038 reads; the rows stored before stay as they were."""
    engine = make_engine(blank_database_url)
    try:
        migrate(engine, "0038")
        old = CBC.read_bytes()
        with engine.begin() as conn:  # as 0038's code stored it
            conn.execute(
                text(
                    "INSERT INTO inbound_message (id, source_system, received_at, sha256, "
                    "size, raw, status, issues, resources, attempts) VALUES (:id, 'lis', "
                    "CURRENT_TIMESTAMP, :sha, :size, :raw, 'processed', :e, :e, 1)"
                ).bindparams(bindparam("id", type_=UuidText())),
                {
                    "id": "m-old",
                    "sha": hashlib.sha256(old).digest(),
                    "size": len(old),
                    "raw": MARK + b"z" + zlib.compress(old, 6),
                    "e": b"[]",
                },
            )
        migrate(engine)
        factory = make_factory(engine)
        messages = [p.read_bytes() for p in sorted(CBC.parent.parent.glob("*/*.hl7"))[:5]]
        with factory.begin() as session:
            received_at = get_message(session, "m-old").received_at  # type: ignore[union-attr]
            for n, raw in enumerate(messages):
                session.add(
                    InboundMessage(
                        id=f"m-{n}",
                        source_system="lis",
                        received_at=received_at,
                        sha256=hashlib.sha256(raw).hexdigest(),
                        size=len(raw),
                        raw=raw,
                    )
                )
        with engine.connect() as conn:
            stored = {bytes(r) for (r,) in conn.execute(text("SELECT raw FROM inbound_message"))}
        assert sum(s.startswith(MARK + b"d") for s in stored) == len(messages)

        downgrade(engine, "0038")
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT id, raw FROM inbound_message").columns(id=UuidText())
            ).all()
        back = {message_id: bytes(raw) for message_id, raw in rows}
        assert back["m-old"] == MARK + b"z" + zlib.compress(old, 6)
        for n, raw in enumerate(messages):
            assert back[f"m-{n}"][:5] == MARK + b"z"
            assert zlib.decompress(back[f"m-{n}"][5:]) == raw
    finally:
        engine.dispose()

"""HL7 v2 over MLLP: the destination against a real TCP receiver (tests/peers/mllp_peer.py),
and the adapter's listener against a real TCP sender, with a real database."""

from __future__ import annotations

import hashlib
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from adapter.connectors.hl7_ack import read_ack
from adapter.connectors.mllp_framing import END, START, FrameReader
from adapter.errors import FatalDeliveryError, RetriableDeliveryError
from adapter.inbound import build_listener
from adapter.inbound.mllp import MllpListener
from adapter.pipeline import Pipeline
from adapter.store import create_message, make_engine, session_factory
from adapter.store.models import InboundMessage
from tests.integration.connector_helpers import destination, items, observation, patient
from tests.integration.connector_helpers import example_pipeline as _pipeline
from tests.peers.mllp_peer import CLOSE, NO_ACK, Delay, MllpPeer, control_id

ROOT = Path(__file__).resolve().parents[2]
ORU = ROOT / "fixtures" / "hl7v2" / "oru" / "std-hl7v2"
BAD = ROOT / "fixtures" / "hl7v2" / "bad"


def _store(factory: sessionmaker[Session], raw: bytes, source: str = "std-hl7v2") -> str:
    with factory.begin() as session:
        message = create_message(
            session,
            source_system=source,
            facility_id="qingshan-county-hospital",
            raw=raw,
            content_type=None,
            sha256=hashlib.sha256(raw).hexdigest(),
            detected_format="hl7v2",
            encoding="utf-8",
            received_at=datetime.now(UTC),
        )
        return message.id


def _mllp(peer: MllpPeer, factory: sessionmaker[Session], **settings: object):
    return destination(
        "mllp",
        {"host": peer.host, "port": peer.port, "ack_timeout_seconds": 2, **settings},
        destination_id="county-lis-out",
        session_factory=factory,
    )


# -- destination ------------------------------------------------------------------------------
def test_aa_delivers_the_original_message(
    mllp_peer: MllpPeer, session_factory: sessionmaker[Session]
) -> None:
    raw = (ORU / "cbc-basic.hl7").read_bytes()
    message_id = _store(session_factory, raw)
    dest = _mllp(mllp_peer, session_factory)
    try:
        # two resources of one message: the message goes once
        results = dest.send(items(patient("p1"), observation("o1"), message_id=message_id))
    finally:
        dest.close()
    assert [(r.ok, r.status) for r in results] == [(True, "AA"), (True, "AA")]
    assert len(mllp_peer.received) == 1
    [sent] = mllp_peer.messages
    assert sent == raw.rstrip(b"\r\n").replace(b"\n", b"\r") + b"\r"
    assert control_id(sent) == "QSLIS202611200001"


def test_ae_is_fatal_and_keeps_the_ack_error(
    mllp_peer: MllpPeer, session_factory: sessionmaker[Session]
) -> None:
    message_id = _store(session_factory, (ORU / "cbc-basic.hl7").read_bytes())
    mllp_peer.plan("AE:unknown test code CBC")
    dest = _mllp(mllp_peer, session_factory)
    try:
        [result] = dest.send(items(observation("o1"), message_id=message_id))
    finally:
        dest.close()
    assert not result.ok and result.status == "AE"
    assert isinstance(result.error, FatalDeliveryError)
    assert "unknown test code CBC" in result.error.message
    issues = result.error.outcome_body["issue"]
    assert issues[0]["diagnostics"] == "unknown test code CBC"
    assert mllp_peer.messages == []


def test_ar_is_fatal(mllp_peer: MllpPeer, session_factory: sessionmaker[Session]) -> None:
    message_id = _store(session_factory, (ORU / "cbc-basic.hl7").read_bytes())
    mllp_peer.plan("AR:unsupported version")
    dest = _mllp(mllp_peer, session_factory)
    try:
        [result] = dest.send(items(observation("o1"), message_id=message_id))
    finally:
        dest.close()
    assert isinstance(result.error, FatalDeliveryError) and result.status == "AR"


@pytest.mark.parametrize("late", [Delay(1.0, "AA"), NO_ACK])
def test_no_ack_in_time_is_retriable_and_the_resend_is_one_message(
    mllp_peer: MllpPeer, session_factory: sessionmaker[Session], late: object
) -> None:
    message_id = _store(session_factory, (ORU / "cbc-basic.hl7").read_bytes())
    mllp_peer.plan(late)
    dest = _mllp(mllp_peer, session_factory, ack_timeout_seconds=0.3)
    try:
        [first] = dest.send(items(observation("o1"), message_id=message_id))
        assert isinstance(first.error, RetriableDeliveryError)
        assert "no ACK within 0.3 s" in first.error.message
        [again] = dest.send(items(observation("o1"), message_id=message_id, first_id=2))
    finally:
        dest.close()
    assert again.ok and again.status == "AA"
    # the receiver got it twice, with one MSH-10, and kept it once
    assert [control_id(m) for m in mllp_peer.received] == ["QSLIS202611200001"] * 2
    assert len(mllp_peer.messages) == 1
    assert mllp_peer.connections == 2  # the timed-out connection was not reused


def test_peer_closing_without_ack_is_retriable(
    mllp_peer: MllpPeer, session_factory: sessionmaker[Session]
) -> None:
    message_id = _store(session_factory, (ORU / "cbc-basic.hl7").read_bytes())
    mllp_peer.plan(CLOSE)
    dest = _mllp(mllp_peer, session_factory)
    try:
        [result] = dest.send(items(observation("o1"), message_id=message_id))
    finally:
        dest.close()
    assert isinstance(result.error, RetriableDeliveryError)
    assert "closed without an ACK" in result.error.message


def test_a_kept_connection_closed_by_the_peer_is_replaced(
    mllp_peer: MllpPeer, session_factory: sessionmaker[Session]
) -> None:
    first = _store(session_factory, (ORU / "cbc-basic.hl7").read_bytes())
    second = _store(session_factory, (ORU / "two-orders.hl7").read_bytes())
    dest = _mllp(mllp_peer, session_factory)
    try:
        assert dest.send(items(observation("o1"), message_id=first))[0].ok
        assert dest.send(items(observation("o1"), message_id=first, first_id=5))[0].ok
        assert mllp_peer.connections == 1  # kept between sends
        mllp_peer.plan(CLOSE)  # the receiver drops the idle connection on the next message
        [result] = dest.send(items(observation("o2"), message_id=second, first_id=9))
    finally:
        dest.close()
    assert result.ok, result.error
    assert mllp_peer.connections == 2
    assert len(mllp_peer.messages) == 2


def test_unreachable_receiver_fails_the_batch_in_order(
    session_factory: sessionmaker[Session],
) -> None:
    first = _store(session_factory, (ORU / "cbc-basic.hl7").read_bytes())
    second = _store(session_factory, (ORU / "two-orders.hl7").read_bytes())
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    dest = destination(
        "mllp",
        {"host": "127.0.0.1", "port": port, "connect_timeout_seconds": 1},
        session_factory=session_factory,
    )
    try:
        results = dest.send(
            items(observation("o1"), message_id=first)
            + items(observation("o2"), message_id=second, first_id=2)
        )
        check = dest.check()
    finally:
        dest.close()
    assert all(isinstance(r.error, RetriableDeliveryError) for r in results)
    assert "cannot connect" in results[0].error.message
    assert "an earlier message failed" in results[1].error.message
    assert not check.reachable and check.kind == "mllp"


def test_resources_without_an_hl7_message_are_fatal(
    mllp_peer: MllpPeer, session_factory: sessionmaker[Session]
) -> None:
    dest = _mllp(mllp_peer, session_factory)
    try:
        [result] = dest.send(items(observation("o1"), message_id=None))
    finally:
        dest.close()
    assert isinstance(result.error, FatalDeliveryError)
    assert mllp_peer.received == []


def test_rewrite_header_changes_msh_3_to_6_only(
    mllp_peer: MllpPeer, session_factory: sessionmaker[Session]
) -> None:
    raw = (ORU / "cbc-basic.hl7").read_bytes()
    message_id = _store(session_factory, raw)
    dest = _mllp(
        mllp_peer,
        session_factory,
        message="rewrite-header",
        sending_application="YGT-ADAPTER",
        sending_facility="QSYGT",
        receiving_application="XZ|LIS",
        receiving_facility="SQWSY",
    )
    try:
        assert dest.send(items(observation("o1"), message_id=message_id))[0].ok
    finally:
        dest.close()
    [sent] = mllp_peer.messages
    header, _, rest = sent.partition(b"\r")
    fields = header.split(b"|")
    assert fields[2:6] == [b"YGT-ADAPTER", b"QSYGT", b"XZ\\F\\LIS", b"SQWSY"]
    original = raw.split(b"\r", 1)
    assert fields[6:] == original[0].split(b"|")[6:]
    assert rest == original[1].rstrip(b"\r\n") + b"\r"


def test_an_unreachable_message_store_is_retriable(mllp_peer: MllpPeer, tmp_path: Path) -> None:
    broken = make_engine(f"sqlite:///{tmp_path / 'missing' / 'adapter.db'}")
    dest = _mllp(mllp_peer, session_factory(broken))
    try:
        results = dest.send(
            items(observation("o1"), message_id="m-1")
            + items(observation("o2"), message_id="m-2", first_id=2)
        )
    finally:
        dest.close()
        broken.dispose()
    assert all(isinstance(r.error, RetriableDeliveryError) for r in results)
    assert mllp_peer.received == []


def test_check_connects(mllp_peer: MllpPeer) -> None:
    dest = destination("mllp", {"host": mllp_peer.host, "port": mllp_peer.port})
    try:
        result = dest.check()
    finally:
        dest.close()
    assert result.reachable and result.error is None and result.kind == "mllp"


# -- listener ---------------------------------------------------------------------------------
def _listener(pipeline: Pipeline, **settings: object) -> MllpListener:
    facility, source = pipeline.consortium.source("std-hl7v2")  # type: ignore[misc]
    source = source.model_copy(update={"connector": {"kind": "mllp", "port": 0, **settings}})
    listener = build_listener(facility, source)
    assert isinstance(listener, MllpListener)
    return listener


@pytest.fixture
def listening(session_factory: sessionmaker[Session]) -> Iterator[tuple[int, MllpListener]]:
    pipeline = _pipeline(session_factory)
    listener = _listener(pipeline)
    port = listener.start(pipeline)
    try:
        yield port, listener
    finally:
        listener.stop()


def _exchange(port: int, *messages: bytes, timeout: float = 10.0) -> list[bytes | None]:
    """Send messages one by one on one connection; each answer (None: closed, no answer)."""
    answers: list[bytes | None] = []
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        reader = FrameReader(10_000_000)
        for message in messages:
            sock.sendall(START + message + END)
            frames: list[bytes] = []
            while not frames:
                chunk = sock.recv(65536)
                if not chunk:
                    answers.append(None)
                    return answers
                frames = reader.feed(chunk)
            answers.append(frames[0])
    return answers


def _messages(factory: sessionmaker[Session]) -> list[InboundMessage]:
    with factory() as session:
        return list(session.scalars(select(InboundMessage).order_by(InboundMessage.received_at)))


def test_listener_stores_then_acknowledges_aa(
    listening: tuple[int, MllpListener], session_factory: sessionmaker[Session]
) -> None:
    port, _ = listening
    cbc = (ORU / "cbc-basic.hl7").read_bytes()
    two = (ORU / "two-orders.hl7").read_bytes()
    answers = _exchange(port, cbc, two, cbc)  # the third is a resend of the first
    acks = [read_ack(a) for a in answers if a is not None]
    assert [(a.code, a.control_id) for a in acks] == [
        ("AA", "QSLIS202611200001"),
        ("AA", control_id(two)),
        ("AA", "QSLIS202611200001"),
    ]
    stored = _messages(session_factory)
    assert len(stored) == 2  # the resend was recognised, not stored twice
    assert {m.status for m in stored} == {"processed"}
    assert all(m.source_system == "std-hl7v2" for m in stored)
    ack_header = answers[0].split(b"\r")[0].split(b"|")
    assert ack_header[2:6] == [b"QSYGT", b"QSYGTPT", b"QSLIS", b"QSXRMYY"]  # swapped
    assert ack_header[8] == b"ACK^R01^ACK"


def test_listener_answers_ae_and_quarantines_what_it_cannot_parse(
    listening: tuple[int, MllpListener], session_factory: sessionmaker[Session]
) -> None:
    port, _ = listening
    bad = (BAD / "bad-segment-name.hl7").read_bytes()
    [answer] = _exchange(port, bad)
    assert answer is not None
    ack = read_ack(answer)
    assert ack.code == "AE"
    assert ack.control_id == "BAD0014"
    assert ack.issues and ack.issues[0].diagnostics
    [stored] = _messages(session_factory)
    assert stored.status == "quarantined"
    assert stored.issues[0]["diagnostics"] == ack.issues[0].diagnostics


def test_listener_answers_garbage_with_ae(
    listening: tuple[int, MllpListener], session_factory: sessionmaker[Session]
) -> None:
    port, _ = listening
    [answer] = _exchange(port, b"\x00\x01 not a message at all")
    ack = read_ack(answer)
    assert ack.code == "AE" and ack.control_id == ""
    assert [m.status for m in _messages(session_factory)] == ["quarantined"]


def test_listener_sends_no_aa_when_the_message_cannot_be_stored(tmp_path: Path) -> None:
    broken = make_engine(f"sqlite:///{tmp_path / 'missing-dir' / 'adapter.db'}")
    pipeline = _pipeline(session_factory(broken))
    listener = _listener(pipeline)
    port = listener.start(pipeline)
    try:
        answers = _exchange(port, (ORU / "cbc-basic.hl7").read_bytes())
    finally:
        listener.stop()
        broken.dispose()
    assert answers == [None]  # connection closed without an acknowledgement


def test_listener_check_and_settings(session_factory: sessionmaker[Session]) -> None:
    from adapter.errors import ConfigError

    pipeline = _pipeline(session_factory)
    with pytest.raises(ConfigError) as caught:
        _listener(pipeline, prot=2575)
    assert caught.value.key == "sources.std-hl7v2.connector.prot"
    listener = _listener(pipeline)
    assert listener.check().reachable  # port 0: always free


def test_an_oversize_frame_is_answered_ar_kept_as_its_first_bytes_and_framing_recovers(
    session_factory: sessionmaker[Session],
) -> None:
    pipeline = _pipeline(session_factory)
    pipeline.max_bytes, pipeline.keep_bytes = 100_000, 1000
    listener = _listener(pipeline)
    port = listener.start(pipeline)
    cbc = (ORU / "cbc-basic.hl7").read_bytes()
    huge = cbc + b"NTE|2||" + b"x" * 3_000_000 + b"\r"
    try:
        answers = _exchange(port, huge, (ORU / "two-orders.hl7").read_bytes())
    finally:
        listener.stop()
    refused, accepted = (read_ack(a) for a in answers if a is not None)
    assert (refused.code, refused.control_id) == ("AR", "QSLIS202611200001")
    assert "100000 bytes (ADAPTER_MAX_MESSAGE_BYTES)" in refused.issues[0].diagnostics
    assert accepted.code == "AA"  # the same connection goes on after the refused frame
    with session_factory() as session:
        rows = session.execute(
            select(InboundMessage.status, InboundMessage.size, InboundMessage.raw).order_by(
                InboundMessage.received_at
            )
        ).all()
    assert [r.status for r in rows] == ["quarantined", "processed"]
    assert rows[0].size == len(huge)  # the true size: the frame was counted to its end
    assert rows[0].raw == huge[:1000]


def test_slow_and_idle_connections_are_timed_out_and_the_limit_makes_room(
    session_factory: sessionmaker[Session], caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 8, finding 6: 30 connections against a limit of 5, half of them stuck in the
    middle of a message; a real sender still gets its ACK at once, and every stuck one is
    closed within the timeouts, with one log line per kind, not one per connection."""
    pipeline = _pipeline(session_factory)
    listener = _listener(
        pipeline, max_connections=5, idle_timeout_seconds=3, frame_timeout_seconds=1.5
    )
    port = listener.start(pipeline)
    stuck: list[socket.socket] = []
    try:
        with caplog.at_level("INFO"):
            opened = time.monotonic()
            for number in range(30):
                sock = socket.create_connection(("127.0.0.1", port), timeout=10)
                if number % 2:
                    sock.sendall(START + b"MSH|^~\\&|half a message")  # never ended
                stuck.append(sock)
            time.sleep(1.2)  # silent for a while now: they give way to a real sender
            started = time.monotonic()
            [answer] = _exchange(port, (ORU / "cbc-basic.hl7").read_bytes())
            took = time.monotonic() - started
            assert answer is not None and read_ack(answer).code == "AA"
            assert took < 10, f"the ACK took {took:.1f} s"
            left = list(stuck)
            while left and time.monotonic() < opened + 3 + 10:
                left = [s for s in left if not _closed_by_peer(s)]
                time.sleep(0.2)
            assert not left, f"{len(left)} stuck connections still open"
    finally:
        for sock in stuck:
            sock.close()
        listener.stop()
    text = caplog.text
    assert text.count("too many connections") == 1, text[-2000:]
    assert text.count("was not complete within 1.5 s") == 1, text[-2000:]


def _closed_by_peer(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        return sock.recv(65536) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True

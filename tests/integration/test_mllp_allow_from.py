"""An MLLP source's ``allow_from``: a peer in the list is served as before; a connection
from any other address is closed before a byte is read, logged (address only) and audited.
Real sockets on loopback, a real database."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager

import orjson
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from adapter.connectors.hl7_ack import read_ack
from adapter.connectors.mllp_framing import END, START
from adapter.errors import ConfigError
from adapter.inbound.mllp import MllpListener
from adapter.store.audit_log import AuditRecord
from adapter.store.models import InboundMessage
from tests.integration.connector_helpers import example_pipeline
from tests.integration.test_connectors_mllp import ORU, _exchange, _listener

CBC = (ORU / "cbc-basic.hl7").read_bytes()


@contextmanager
def _listening(
    factory: sessionmaker[Session], allow_from: list[str]
) -> Iterator[tuple[int, MllpListener]]:
    pipeline = example_pipeline(factory)
    listener = _listener(pipeline, allow_from=allow_from)
    port = listener.start(pipeline)
    try:
        yield port, listener
    finally:
        listener.stop()


def _refused(port: int) -> bool:
    """Connect, send a message and read: True when the listener closed without answering."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        try:
            sock.sendall(START + CBC + END)
            return sock.recv(65536) == b""
        except ConnectionError:  # closed before our bytes arrived: a reset
            return True


def _stored(factory: sessionmaker[Session]) -> list[InboundMessage]:
    with factory() as session:
        return list(session.scalars(select(InboundMessage)))


def _refusals(factory: sessionmaker[Session]) -> list[AuditRecord]:
    with factory() as session:
        return list(
            session.scalars(select(AuditRecord).where(AuditRecord.action == "connection.refused"))
        )


def test_a_peer_in_the_list_is_served(session_factory: sessionmaker[Session]) -> None:
    with _listening(session_factory, ["10.12.0.0/16", "127.0.0.1"]) as (port, _):
        [answer] = _exchange(port, CBC)
    assert answer is not None and read_ack(answer).code == "AA"
    assert [m.status for m in _stored(session_factory)] == ["processed"]
    assert _refusals(session_factory) == []


def test_a_peer_not_in_the_list_is_closed_unread_logged_and_audited(
    session_factory: sessionmaker[Session], caplog: pytest.LogCaptureFixture
) -> None:
    with (
        caplog.at_level(logging.WARNING, logger="adapter.inbound.mllp"),
        _listening(session_factory, ["10.12.0.0/16", "::1"]) as (port, _),
        socket.create_connection(("127.0.0.1", port), timeout=10) as sock,
    ):
        local_port = sock.getsockname()[1]
        try:
            sock.sendall(START + CBC + END)
            answer = sock.recv(65536)
        except ConnectionError:  # closed before our bytes arrived: a reset
            answer = b""
        assert answer == b""  # closed, no ACK
        # the refusal is audited off the event loop, after the close
        deadline = time.monotonic() + 10
        while not _refusals(session_factory) and time.monotonic() < deadline:
            time.sleep(0.05)
    assert _stored(session_factory) == []  # nothing read, nothing kept
    [refusal] = _refusals(session_factory)
    assert refusal.outcome == "failure" and refusal.actor == "anonymous"
    assert refusal.address == f"127.0.0.1:{local_port}" and refusal.channel == "mllp"
    body = orjson.loads(refusal.body)
    assert body["detail"] == {"source": "std-hl7v2", "reason": "not in allow_from"}
    [line] = [r.getMessage() for r in caplog.records if "refused a connection" in r.message]
    assert line == (
        f"MLLP std-hl7v2: refused a connection from 127.0.0.1:{local_port} (not in allow_from)"
    )


def test_an_allowed_peer_after_a_refused_one_is_still_served(
    session_factory: sessionmaker[Session],
) -> None:
    """A refusal closes that connection only: the listener keeps serving (here the same
    address is refused each time, and a listener that allows it serves it)."""
    with _listening(session_factory, ["192.0.2.0/24"]) as (port, _):
        assert _refused(port)
        assert _refused(port)
    with _listening(session_factory, ["127.0.0.0/8"]) as (port, _):
        [answer] = _exchange(port, CBC)
    assert answer is not None and read_ack(answer).code == "AA"
    assert len(_stored(session_factory)) == 1
    deadline = time.monotonic() + 10
    while len(_refusals(session_factory)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(_refusals(session_factory)) == 2


def test_the_listener_settings_refuse_a_wrong_entry(session_factory: sessionmaker[Session]) -> None:
    pipeline = example_pipeline(session_factory)
    with pytest.raises(ConfigError) as caught:
        _listener(pipeline, allow_from=["10.12.0.300"])
    assert caught.value.key == "sources.std-hl7v2.connector.allow_from"
    assert "'10.12.0.300' is not an address or network" in str(caught.value)


def _wait_for(factory: sessionmaker[Session], count: int, seconds: float = 15) -> list[AuditRecord]:
    deadline = time.monotonic() + seconds
    while len(_refusals(factory)) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return sorted(_refusals(factory), key=lambda r: r.seq)


def test_a_peer_that_keeps_reconnecting_is_recorded_once_per_window(
    session_factory: sessionmaker[Session], caplog: pytest.LogCaptureFixture
) -> None:
    """A sender retrying in a loop (or a scan) does not flood the log and the audit chain:
    its first refusal is recorded, the next 29 within the window become one digest record
    with their count, and a refusal after the window is recorded at once again."""
    pipeline = example_pipeline(session_factory)
    listener = _listener(pipeline, allow_from=["192.0.2.0/24"], refusal_digest_seconds=1.0)
    port = listener.start(pipeline)
    try:
        with caplog.at_level(logging.WARNING, logger="adapter.inbound.mllp"):
            for _ in range(30):
                assert _refused(port)
            first, digest = _wait_for(session_factory, 2)
            assert "connections" not in orjson.loads(first.body)["detail"]
            assert orjson.loads(digest.body)["detail"]["connections"] == 29
            assert digest.address == "127.0.0.1"
            assert _refused(port)  # the window has ended: recorded at once
            assert len(_wait_for(session_factory, 3)) == 3
        lines = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
        assert len(lines) == 3
        assert "refused 29 more connections from 127.0.0.1 in 1 s" in lines[1]
    finally:
        listener.stop()
    assert _stored(session_factory) == []

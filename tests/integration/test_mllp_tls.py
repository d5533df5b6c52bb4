"""MLLP over TLS: a source's listener with ``tls`` speaks TLS only; with ``client_ca_file``
it also requires the sender's certificate from that CA. Real sockets on loopback, the
handshake by Python's ``ssl`` on both sides, certificates made for the test."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from adapter.connectors.hl7_ack import read_ack
from adapter.connectors.mllp_framing import END, START, FrameReader
from adapter.errors import ConfigError
from adapter.store.models import InboundMessage
from tests.integration.connector_helpers import example_pipeline
from tests.integration.test_connectors_mllp import ORU, _listener
from tests.pki import Pair, make, name

CBC = (ORU / "cbc-basic.hl7").read_bytes()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Pair]:
    folder = tmp_path_factory.mktemp("mllp-pki")
    ca_name = name("MLLP CA")
    ca, _, ca_key = make(folder, "ca", ca_name, None, ca=True)
    other_name = name("other CA")
    _, _, other_key = make(folder, "other", other_name, None, ca=True)
    return {
        "ca": ca,
        "server": make(folder, "server", name("adapter"), (ca_name, ca_key), server=True)[0],
        "lis": make(folder, "lis", name("county-lis"), (ca_name, ca_key))[0],
        "foreign": make(folder, "foreign", name("county-lis"), (other_name, other_key))[0],
    }


@contextmanager
def _listening(factory: sessionmaker[Session], tls: dict[str, str]) -> Iterator[int]:
    pipeline = example_pipeline(factory)
    listener = _listener(pipeline, tls=tls)
    port = listener.start(pipeline)
    try:
        yield port
    finally:
        listener.stop()


def _send(port: int, context: ssl.SSLContext | None, message: bytes) -> bytes:
    # a bound, not a measure: the first message stores through a cold pipeline, which took
    # over 10 s on PostgreSQL under the CI's two workers at load 11
    with socket.create_connection(("127.0.0.1", port), timeout=60) as raw:
        sock = context.wrap_socket(raw, server_hostname="127.0.0.1") if context else raw
        sock.sendall(START + message + END)
        reader = FrameReader(1_000_000)
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed without an answer")
            frames = reader.feed(chunk)
            if frames:
                return frames[0]


def _client(pki: dict[str, Pair], cert: Pair | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki["ca"][0]))
    if cert is not None:
        context.load_cert_chain(str(cert[0]), str(cert[1]))
    return context


def _stored(factory: sessionmaker[Session]) -> int:
    with factory() as session:
        return len(list(session.scalars(select(InboundMessage.id))))


def test_tls_listener_receives_and_acknowledges(
    session_factory: sessionmaker[Session], pki: dict[str, Pair]
) -> None:
    tls = {"cert_file": str(pki["server"][0]), "key_file": str(pki["server"][1])}
    with _listening(session_factory, tls) as port:
        ack = read_ack(_send(port, _client(pki), CBC))
        assert ack.code == "AA"
        # plain MLLP on the TLS port gets no acknowledgement and stores nothing
        with pytest.raises((ConnectionError, TimeoutError, OSError)):
            _send(port, None, CBC.replace(b"MSG00001", b"PLAIN0001"))
    assert _stored(session_factory) == 1


def test_mutual_tls_requires_a_certificate_of_the_ca(
    session_factory: sessionmaker[Session], pki: dict[str, Pair]
) -> None:
    tls = {
        "cert_file": str(pki["server"][0]),
        "key_file": str(pki["server"][1]),
        "client_ca_file": str(pki["ca"][0]),
    }
    with _listening(session_factory, tls) as port:
        assert read_ack(_send(port, _client(pki, pki["lis"]), CBC)).code == "AA"
        for cert in (None, pki["foreign"]):
            with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
                _send(port, _client(pki, cert), CBC)
    assert _stored(session_factory) == 1


def test_unreadable_tls_files_stop_start_up_with_their_place(
    session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    pipeline = example_pipeline(session_factory)
    with pytest.raises(ConfigError) as caught:
        _listener(
            pipeline,
            tls={"cert_file": str(tmp_path / "none.pem"), "key_file": str(tmp_path / "k")},
        )
    assert "sources.std-hl7v2.connector.tls" in caught.value.message

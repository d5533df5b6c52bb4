"""Oversize bodies through the real server (issue 8, finding 3): the limit is enforced while
the body streams in, the server's memory stays bounded, and what is kept of a refused body
is its first bytes and its size, not the body."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from adapter.store.models import InboundMessage
from tests.live.server import LiveServer

ROOT = Path(__file__).resolve().parents[2]
HEADER = (ROOT / "fixtures" / "hl7v2" / "oru" / "std-hl7v2" / "cbc-basic.hl7").read_bytes()
KEEP = 65536
MIB = 1024 * 1024
START_TIMEOUT = 120.0  # seconds: a loaded CI machine starts the server slowly


def _body(size: int) -> Iterator[bytes]:
    """A real message head followed by one huge NTE, produced piece by piece."""
    yield HEADER
    sent = len(HEADER)
    piece = b"NTE|1||" + b"x" * (MIB - 7)
    while sent < size:
        chunk = piece[: size - sent]
        sent += len(chunk)
        yield chunk


def _peak_rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    line = next(x for x in status.splitlines() if x.startswith("VmHWM:"))
    return int(line.split()[1])


def _stored(factory: sessionmaker[Session], message_id: str) -> tuple[bytes, int, str]:
    with factory() as session:
        message = session.get(InboundMessage, message_id)
        assert message is not None
        return bytes(message.raw), message.size, message.status


@pytest.mark.slow
def test_a_200_mb_body_is_refused_while_streaming_and_memory_stays_bounded(
    database_url: str, tmp_path: Path, session_factory: sessionmaker[Session]
) -> None:
    size = 200 * MIB
    with LiveServer(database_url, tmp_path, start_timeout=START_TIMEOUT) as server:
        assert server.process is not None
        before = _peak_rss_kib(server.process.pid)
        response = httpx.post(
            server.url("/ingest"),
            content=_body(size),
            headers={
                "X-Source-System": "std-hl7v2",
                "Content-Type": "application/hl7-v2",
                "Content-Length": str(size),
            },
            timeout=120,
        )
        after = _peak_rss_kib(server.process.pid)
        assert response.status_code == 413
        outcome = response.json()
        assert outcome["resourceType"] == "OperationOutcome"
        diagnostics = outcome["issue"][0]["diagnostics"]
        assert outcome["issue"][0]["code"] == "too-long"
        assert f"{size} bytes" in diagnostics and "ADAPTER_MAX_MESSAGE_BYTES" in diagnostics
        # the server is still fine for the next sender
        assert httpx.get(server.url("/health")).status_code == 200
    # the refused body never sat in the server's memory (it would add 200+ MiB)
    grown_mib = (after - before) / 1024
    print(f"server peak RSS {before // 1024} MiB -> {after // 1024} MiB ({grown_mib:+.1f} MiB)")
    assert grown_mib < 40
    raw, stored_size, status = _stored(session_factory, response.headers["X-Message-Id"])
    assert status == "quarantined"
    assert stored_size == size  # the true size, from Content-Length
    expected_prefix = b"".join(_body(KEEP + MIB))[:KEEP]
    assert raw == expected_prefix  # only the first bytes are kept


@pytest.mark.slow
def test_a_chunked_body_is_cut_at_the_limit_and_flagged(
    database_url: str, tmp_path: Path, session_factory: sessionmaker[Session]
) -> None:
    limit = 2 * MIB
    with LiveServer(
        database_url,
        tmp_path,
        env={"ADAPTER_MAX_MESSAGE_BYTES": str(limit), "ADAPTER_OVERSIZE_KEEP_BYTES": "1000"},
        start_timeout=START_TIMEOUT,
    ) as server:
        assert server.process is not None
        before = _peak_rss_kib(server.process.pid)
        response = httpx.post(  # no length: chunked transfer encoding
            server.url("/ingest"),
            content=_body(100 * MIB),
            headers={"X-Source-System": "std-hl7v2"},
            timeout=120,
        )
        after = _peak_rss_kib(server.process.pid)
        assert response.status_code == 413
        assert response.headers["connection"] == "close"
        diagnostics = response.json()["issue"][0]["diagnostics"]
        assert f"larger than {limit} bytes (reading stopped after" in diagnostics
        # a resend is recognised as the same refusal, not stored twice
        again = httpx.post(
            server.url("/ingest"),
            content=_body(100 * MIB),
            headers={"X-Source-System": "std-hl7v2"},
            timeout=120,
        )
        assert again.status_code == 413
        assert again.headers["X-Message-Id"] == response.headers["X-Message-Id"]
    assert (after - before) / 1024 < 40
    raw, stored_size, _ = _stored(session_factory, response.headers["X-Message-Id"])
    assert raw == HEADER[:1000]
    assert limit < stored_size < limit + 2 * MIB  # what was read before reading stopped
    with session_factory() as session:
        rows = session.scalars(select(InboundMessage.sha256)).all()
    assert rows == [hashlib.sha256(raw).hexdigest()]  # the hash of the bytes kept

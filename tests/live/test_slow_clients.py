"""Slow and half-sent requests through the real server (issue 8, finding 6): they are timed
out, the connection limit holds, a normal request still answers promptly, and the log says
"too many connections" once, not once per connection."""

from __future__ import annotations

import contextlib
import resource
import select
import socket
import time
from pathlib import Path

import httpx
import pytest

from tests.live.server import LiveServer

ROOT = Path(__file__).resolve().parents[2]
CBC = (ROOT / "fixtures" / "hl7v2" / "oru" / "std-hl7v2" / "cbc-basic.hl7").read_bytes()
HALF_OPEN = 300
TIMEOUT = 3.0


def _enough_descriptors(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, needed), hard))


def _half_sent(port: int, number: int) -> socket.socket:
    """A request that stops in its headers (even numbers) or in its body (odd ones)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    if number % 2 == 0:
        sock.sendall(b"POST /ingest HTTP/1.1\r\nHost: x\r\nX-Source-System: std-")
    else:
        sock.sendall(
            b"POST /ingest HTTP/1.1\r\nHost: x\r\nX-Source-System: std-hl7v2\r\n"
            + f"Content-Length: {len(CBC)}\r\n\r\n".encode()
            + CBC[:40]
        )
    return sock


def _closed_by_server(sock: socket.socket) -> bool:
    readable, _, _ = select.select([sock], [], [], 0)
    if not readable:
        return False
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return True
            readable, _, _ = select.select([sock], [], [], 0)
            if not readable:
                return False
    except (ConnectionResetError, BrokenPipeError):
        return True


def _post_as_a_sender_does(url: str, deadline: float) -> httpx.Response:
    """POST the lab report, honouring a 503's Retry-After as a sending system does. On a
    loaded machine the server may take the last half-sent connections in late, so they have
    not yet been silent long enough to be closed for room (netlimits.MIN_SILENCE_SECONDS):
    then it refuses with 503 and Retry-After: 1, and the retry finds room."""
    while True:
        answer = httpx.post(
            url,
            content=CBC,
            headers={"X-Source-System": "std-hl7v2", "Content-Type": "application/hl7-v2"},
            timeout=30,
        )
        wait = float(answer.headers.get("Retry-After", "0") or 0)
        if answer.status_code != 503 or not wait or time.monotonic() + wait > deadline:
            return answer
        time.sleep(wait)


@pytest.mark.slow
def test_half_sent_requests_are_timed_out_and_a_normal_request_still_answers(
    database_url: str, tmp_path: Path
) -> None:
    _enough_descriptors(HALF_OPEN * 2 + 256)
    env = {
        "ADAPTER_HTTP_MAX_CONNECTIONS": "50",
        "ADAPTER_HTTP_HEADER_TIMEOUT_SECONDS": str(TIMEOUT),
        "ADAPTER_HTTP_BODY_TIMEOUT_SECONDS": str(TIMEOUT),
    }
    sockets: list[socket.socket] = []
    with LiveServer(database_url, tmp_path, env=env) as server:
        try:
            opened = time.monotonic()
            for number in range(HALF_OPEN):
                # one refused and closed while we were still sending raises: that is fine
                with contextlib.suppress(OSError):
                    sockets.append(_half_sent(server.port, number))
            time.sleep(1.2)  # the half-sent ones have now been silent for a while
            started = time.monotonic()
            answer = _post_as_a_sender_does(server.url("/ingest"), started + 10)
            took = time.monotonic() - started
            assert answer.status_code == 202, answer.text
            assert took < 10, f"a normal request took {took:.1f} s"
            # every half-sent request is closed by the server within the timeouts
            deadline = opened + TIMEOUT + 10
            open_ones = list(sockets)
            while open_ones and time.monotonic() < deadline:
                open_ones = [s for s in open_ones if not _closed_by_server(s)]
                time.sleep(0.2)
            assert not open_ones, f"{len(open_ones)} half-sent requests still open"
            assert httpx.get(server.url("/health"), timeout=10).status_code == 200
        finally:
            for sock in sockets:
                sock.close()
        log = server.log_text()
    assert log.count("too many connections") == 1, log[-3000:]
    assert log.count("ADAPTER_HTTP_HEADER_TIMEOUT_SECONDS") == 1
    assert log.count("ADAPTER_HTTP_BODY_TIMEOUT_SECONDS") == 1
    assert "Too many open files" not in log
    print("\n".join(line for line in log.splitlines() if "HTTP:" in line))

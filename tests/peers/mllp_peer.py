"""A real HL7 v2 receiver over MLLP on loopback, for tests of the MLLP destination.

It behaves as a careful receiver: it keeps each message it accepts once, dropping a resent
one with an MSH-10 it already has (and acknowledging it again), and answers each message
with an ACK chosen by the test:

    peer = MllpPeer().start()
    peer.plan("AE:unknown test code", "AA")   # next answers; then the default, "AA"
    peer.plan(Delay(3, "AA"))                 # answer after 3 s (a sender may time out)
    peer.plan(NO_ACK)                         # keep the message, never answer it
    peer.plan(CLOSE)                          # close the connection instead of answering
    peer.messages                             # accepted messages (bytes), one per MSH-10
    peer.received                             # every frame received, duplicates too
    peer.stop()

A message answered AA (or kept without an answer, NO_ACK) is recorded before its ACK is
written, even when the answer is delayed: exactly the situation where a sender resends it
with the same MSH-10. Messages answered AE/AR or with CLOSE are not kept.
"""

from __future__ import annotations

import socket
import socketserver
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

START, END = b"\x0b", b"\x1c\x0d"


@dataclass(frozen=True)
class Delay:
    seconds: float
    answer: str = "AA"


NO_ACK = "NO_ACK"
CLOSE = "CLOSE"


def _fields(message: bytes) -> list[bytes]:
    first = message.split(b"\r", 1)[0]
    return first.split(first[3:4]) if first.startswith(b"MSH") and len(first) > 3 else []


def control_id(message: bytes) -> str:
    fields = _fields(message)
    return fields[9].decode("latin-1") if len(fields) > 9 else ""


def ack(message: bytes, code: str, text: str = "") -> bytes:
    fields = _fields(message)

    def f(n: int) -> bytes:
        return fields[n - 1] if len(fields) >= n else b""

    msh = b"|".join(
        [
            b"MSH",
            b"^~\\&",
            f(5),
            f(6),
            f(3),
            f(4),
            time.strftime("%Y%m%d%H%M%S").encode(),
            b"",
            b"ACK",
            uuid.uuid4().hex[:20].encode(),
            b"P",
            f(12) or b"2.5.1",
        ]
    )
    msa = b"|".join([b"MSA", code.encode(), f(10), text.encode()])
    segments = [msh, msa]
    if code != "AA" and text:
        segments.append(b"ERR|||207^Application internal error^HL70357|E||||" + text.encode())
    return b"\r".join(segments) + b"\r"


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        peer = self.server.peer
        buffer = bytearray()
        sock: socket.socket = self.request
        with peer._lock:
            peer.connections += 1
        while True:
            try:
                chunk = sock.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            buffer.extend(chunk)
            while True:
                start = buffer.find(START)
                end = buffer.find(END, start + 1) if start >= 0 else -1
                if start < 0 or end < 0:
                    break
                message = bytes(buffer[start + 1 : end])
                del buffer[: end + 2]
                answer = peer._take(message)
                if not self._answer(sock, message, answer):
                    return

    def _answer(self, sock: socket.socket, message: bytes, answer: Any) -> bool:
        if isinstance(answer, Delay):
            time.sleep(answer.seconds)
            answer = answer.answer
        if answer == NO_ACK:
            return True
        if answer == CLOSE:
            sock.close()
            return False
        code, _, text = str(answer).partition(":")
        try:
            sock.sendall(START + ack(message, code, text) + END)
        except OSError:
            return False
        return True


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    peer: MllpPeer


class MllpPeer:
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._server = _Server((host, port), _Handler)
        self._server.peer = self
        self.host, self.port = self._server.server_address[:2]
        self._lock = threading.Lock()
        self._plan: list[Any] = []
        self.default: Any = "AA"
        self.received: list[bytes] = []
        self.messages: list[bytes] = []
        self._seen: set[str] = set()
        self.connections = 0
        self._thread: threading.Thread | None = None

    def start(self) -> MllpPeer:
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def plan(self, *answers: Any) -> None:
        with self._lock:
            self._plan.extend(answers)

    def _take(self, message: bytes) -> Any:
        with self._lock:
            self.received.append(message)
            answer = self._plan.pop(0) if self._plan else self.default
            final = answer.answer if isinstance(answer, Delay) else answer
            key = control_id(message)
            # kept: answered AA, or stored with its ACK lost; AE/AR and CLOSE keep nothing.
            # A resend of a kept message is dropped (and answered again)
            if (final == NO_ACK or str(final).startswith(("AA", "CA"))) and key not in self._seen:
                self._seen.add(key)
                self.messages.append(message)
            return answer

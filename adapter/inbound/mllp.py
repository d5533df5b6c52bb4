"""HL7 v2 over MLLP: framing, the destination that sends and waits for the ACK, and the
listener that stores each received message before it acknowledges it.

MLLP frames a message as ``0x0B message 0x1C 0x0D``; the receiver answers each message
with an ACK on the same connection before the next one is sent.

Destination: sends the inbound message the resources came from (``message: original``)
or the same with MSH-3..6 rewritten for the receiver (``message: rewrite-header``), always
with its original MSH-10, so that a resend after a lost ACK can be dropped by the receiver
as a duplicate. AA/CA = delivered; AE/AR = fatal, the ACK's errors kept as an
OperationOutcome; no ACK in time (or a dropped connection) = retriable.

Listener: one message at a time per connection. The message goes through the pipeline,
which commits it (with its resources, or quarantined) before the ACK is written: AA when
it was processed, AE with the located errors when it was quarantined (it is kept and can be
reprocessed). When it cannot be stored (database down ...), no ACK is sent and the
connection is closed, so the sender keeps the message and sends it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from adapter.connectors.auth import TlsSettings, ssl_context
from adapter.connectors.base import (
    CheckResult,
    ConnectorContext,
    ConnectorSettings,
    DeliveryItem,
    ItemResult,
    parse_settings,
    register_destination,
    register_source,
    timed_check,
)
from adapter.connectors.hl7_ack import build_ack, header_of, read_ack
from adapter.consortium import Destination as DestinationConfig
from adapter.consortium import Facility, SourceSystem
from adapter.errors import (
    AdapterError,
    DeliveryError,
    FatalDeliveryError,
    Issue,
    RetriableDeliveryError,
)
from adapter.hl7v2 import escape, parse_hl7v2
from adapter.netlimits import SaidOnce, longest_silent
from adapter.pipeline.oversize import Oversize

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from adapter.pipeline.ingest import IngestResult, Pipeline

log = logging.getLogger(__name__)

START = b"\x0b"
END = b"\x1c\x0d"
HL7_CONTENT_TYPE = "x-application/hl7-v2+er7"


# -- framing ----------------------------------------------------------------------------------
def frame(message: bytes) -> bytes:
    return START + message + END


class FrameTooLarge(Exception):
    pass


@dataclass(frozen=True, slots=True)
class CutFrame:
    """The bytes of a frame that never ended: a start block came before its end block (the
    sender stopped in the middle of a message and began the next one). 0x0B never occurs in
    HL7 text, so the new start block is the next frame; these bytes are not a message."""

    data: bytes


class FrameReader:
    """Cuts a byte stream into MLLP frames. Bytes outside a frame are dropped.

    A frame longer than ``max_bytes`` raises ``FrameTooLarge``, or, when ``keep`` is given,
    is read to its end without being held: it comes out as an ``Oversize`` with its first
    ``keep`` bytes and its length, and the frames after it are read as usual. The reader
    never holds more than ``max_bytes`` plus one read.
    """

    def __init__(self, max_bytes: int, *, keep: int | None = None) -> None:
        self.max_bytes = max_bytes
        self.keep = keep
        self._buffer = bytearray()
        self._skipping: _Skipping | None = None

    def feed(self, data: bytes) -> list[bytes | Oversize | CutFrame]:
        frames: list[bytes | Oversize | CutFrame] = []
        if self._skipping is not None:
            data = self._skip(data, frames)
        self._buffer.extend(data)
        while True:
            start = self._buffer.find(START)
            if start < 0:
                self._buffer.clear()
                break
            end = self._buffer.find(END, start + 1)
            restart = self._buffer.find(START, start + 1, end if end >= 0 else len(self._buffer))
            if restart > 0:  # a frame cut off: what follows the new start block is the next
                frames.append(CutFrame(bytes(self._buffer[start + 1 : restart])))
                del self._buffer[:restart]
                continue
            if end < 0:
                if start:
                    del self._buffer[:start]
                if len(self._buffer) > self.max_bytes + 1:
                    self._too_large(bytes(self._buffer[1:]))
                    self._buffer.clear()
                break
            body = bytes(self._buffer[start + 1 : end])
            del self._buffer[: end + len(END)]
            if len(body) > self.max_bytes:
                self._too_large(body)
                assert self._skipping is not None
                frames.append(self._skipping.done(0))
                self._skipping = None
            else:
                frames.append(body)
        return frames

    def _too_large(self, start_of_frame: bytes) -> None:
        if self.keep is None:
            raise FrameTooLarge(f"a frame is longer than {self.max_bytes} bytes")
        self._skipping = _Skipping(start_of_frame[: self.keep], len(start_of_frame))
        self._skipping.last = start_of_frame[-1:]

    def _skip(self, data: bytes, frames: list[bytes | Oversize | CutFrame]) -> bytes:
        """Count the bytes of an oversize frame up to its end; what follows it."""
        skipping = self._skipping
        assert skipping is not None
        if skipping.last == END[:1] and data[:1] == END[1:]:  # the end block was split
            frames.append(skipping.done(-1))
            self._skipping = None
            return data[1:]
        end = data.find(END)
        if end < 0:
            skipping.size += len(data)
            skipping.last = data[-1:] or skipping.last
            return b""
        frames.append(skipping.done(end))
        self._skipping = None
        return data[end + len(END) :]

    @property
    def pending(self) -> bool:
        return bool(self._buffer) or self._skipping is not None


class _Skipping:
    """An oversize frame being read to its end: its first bytes and the bytes counted."""

    def __init__(self, prefix: bytes, size: int) -> None:
        self.prefix = prefix
        self.size = size
        self.last = b""

    def done(self, more: int) -> Oversize:
        return Oversize(self.prefix, self.size + more)


def normalise_for_sending(raw: bytes) -> bytes:
    """A stored message as MLLP content: no framing or surrounding blank lines, segments
    ended by CR (stored messages may use LF or CRLF)."""
    body = raw.lstrip(b"\x0b\r\n\t \xef\xbb\xbf").rstrip(b"\x1c\r\n")
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\x00" in body[:64]:
        raise FatalDeliveryError("the message is UTF-16; MLLP carries byte-oriented charsets")
    body = body.replace(b"\r\n", b"\r").replace(b"\n", b"\r")
    return body + b"\r"


def rewrite_header(raw: bytes, fields: dict[int, str]) -> bytes:
    """Replace some MSH fields (3..6 ...) in a message, leaving every other byte as it was."""
    message = parse_hl7v2(raw)
    d = message.delimiters
    fs = d.field.encode("ascii")
    end = raw.find(b"\r")
    line, rest = (raw, b"") if end < 0 else (raw[:end], raw[end:])
    parts = line.split(fs)
    for number, value in fields.items():
        index = number - 1  # parts[0] is "MSH", parts[1] is MSH-2 (MSH-1 is the separator)
        while len(parts) <= index:
            parts.append(b"")
        parts[index] = escape(value, d).encode(message.charset)
    return fs.join(parts) + rest


# -- destination ------------------------------------------------------------------------------
class MllpDestinationSettings(ConnectorSettings):
    host: str
    port: int = Field(ge=1, le=65535)
    connect_timeout_seconds: float = Field(5.0, gt=0)
    ack_timeout_seconds: float = Field(
        30.0, gt=0, description="wait this long for the ACK, then retry"
    )
    message: Literal["original", "rewrite-header"] = "original"
    sending_application: str | None = None
    sending_facility: str | None = None
    receiving_application: str | None = None
    receiving_facility: str | None = None
    tls: TlsSettings | None = Field(None, description="MLLP over TLS when given")
    max_ack_bytes: int = Field(1_048_576, gt=0)


class MllpDestination:
    kind = "mllp"

    def __init__(
        self,
        destination_id: str,
        settings: MllpDestinationSettings,
        session_factory: sessionmaker[Session] | None,
    ) -> None:
        self.id = destination_id
        self.settings = settings
        self._factory = session_factory
        self._ssl = (
            ssl_context(settings.tls, where=f"destinations.{destination_id}.settings")
            if settings.tls
            else None
        )
        self._lock = threading.Lock()  # one exchange at a time on the one connection
        self._sock: socket.socket | None = None

    # -- contract ---------------------------------------------------------------------------
    def check(self) -> CheckResult:
        def probe() -> str | None:
            with self._connect():
                return None

        return timed_check(self.id, self.kind, probe)

    def send(self, batch: list[DeliveryItem]) -> list[ItemResult]:
        # one message per inbound message, in order; its result is every item's result
        groups: dict[str | None, list[DeliveryItem]] = {}
        for item in batch:
            groups.setdefault(item.message_id, []).append(item)
        results: dict[int, ItemResult] = {}
        stop: DeliveryError | None = None
        for message_id, items in groups.items():
            started = time.perf_counter()
            status: str | None = None
            if stop is not None:
                error: DeliveryError | None = stop  # keep the order: nothing after a failure
            else:
                try:
                    status = self._deliver(message_id)
                    error = None
                except DeliveryError as exc:
                    error, status = exc, exc.status if isinstance(exc.status, str) else None
                except Exception as exc:  # e.g. the message store is unreachable
                    log.warning(
                        "MLLP %s: cannot send message %s (%s)",
                        self.id,
                        message_id,
                        type(exc).__name__,
                    )
                    error = RetriableDeliveryError(f"cannot send: {type(exc).__name__}")
                if isinstance(error, RetriableDeliveryError):
                    stop = RetriableDeliveryError(
                        f"not sent: an earlier message failed ({error.message})"
                    )
            duration = round((time.perf_counter() - started) * 1000, 1)
            for item in items:
                results[item.outbox_id] = ItemResult(
                    item.outbox_id, error is None, error, status, duration
                )
        return [results[item.outbox_id] for item in batch]

    def close(self) -> None:
        with self._lock:
            self._drop()

    # -- one message ------------------------------------------------------------------------
    def _deliver(self, message_id: str | None) -> str:
        if message_id is None:
            raise FatalDeliveryError(
                "the resource came from no inbound message: an MLLP "
                "destination can only forward HL7 v2 messages"
            )
        payload = self._payload(message_id)
        control_id = header_of(payload).control_id
        with self._lock:
            try:
                ack = self._exchange(payload, control_id)
            except DeliveryError:
                self._drop()
                raise
        if ack.accepted:
            return ack.code
        raise FatalDeliveryError(
            f"the receiver answered {ack.code} to {control_id}: {ack.text or 'no text'}",
            status=ack.code,
            outcome_body=ack.outcome(),
        )

    def _payload(self, message_id: str) -> bytes:
        if self._factory is None:
            raise FatalDeliveryError(
                "this MLLP destination was built without the database "
                "(build_destination(..., session_factory=...))"
            )
        from adapter.errors import AlteredBytesError
        from adapter.store import get_message, verified_raw

        with self._factory() as session:
            message = get_message(session, message_id)
            if message is None:
                raise FatalDeliveryError(f"inbound message {message_id} is not stored")
            if message.detected_format not in (None, "hl7v2"):
                raise FatalDeliveryError(
                    f"inbound message {message_id} is {message.detected_format}, not HL7 v2"
                )
            try:
                raw = verified_raw(message)
            except AlteredBytesError as exc:
                raise FatalDeliveryError(exc.message) from None
        body = normalise_for_sending(raw)
        if self.settings.message == "rewrite-header":
            s = self.settings
            wanted = {
                3: s.sending_application,
                4: s.sending_facility,
                5: s.receiving_application,
                6: s.receiving_facility,
            }
            try:
                body = rewrite_header(body, {k: v for k, v in wanted.items() if v is not None})
            except AdapterError as exc:
                raise FatalDeliveryError(
                    f"cannot rebuild message {message_id}: {exc.message}"
                ) from None
        return body

    def _exchange(self, payload: bytes, control_id: str) -> Any:
        """Send and wait for the ACK naming ``control_id``. A kept connection the peer has
        closed meanwhile is noticed as EOF before any answer: then once more on a new one."""
        for attempt in (1, 2):
            reused = self._sock is not None
            sock = self._socket()
            try:
                sock.sendall(frame(payload))
                return self._await_ack(sock, control_id)
            except _ClosedBeforeAnswer:
                self._drop()
                if reused and attempt == 1:
                    continue
                raise RetriableDeliveryError(
                    f"{self._where()}: connection closed without an ACK"
                ) from None
            except TimeoutError:
                raise RetriableDeliveryError(
                    f"{self._where()}: no ACK within {self.settings.ack_timeout_seconds:g} s "
                    f"for {control_id}"
                ) from None
            except OSError as exc:
                self._drop()
                if reused and attempt == 1:
                    continue
                raise RetriableDeliveryError(f"{self._where()}: {exc}") from None
        raise AssertionError("unreachable")

    def _await_ack(self, sock: socket.socket, control_id: str) -> Any:
        reader = FrameReader(self.settings.max_ack_bytes)
        deadline = time.monotonic() + self.settings.ack_timeout_seconds
        got_bytes = False
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            sock.settimeout(left)
            chunk = sock.recv(65536)
            if not chunk:
                if got_bytes:
                    raise RetriableDeliveryError(
                        f"{self._where()}: connection closed in the middle of the ACK"
                    )
                raise _ClosedBeforeAnswer
            got_bytes = True
            try:
                frames = reader.feed(chunk)
            except FrameTooLarge:
                raise RetriableDeliveryError(f"{self._where()}: the answer is too large") from None
            for data in frames:
                if isinstance(data, CutFrame):
                    continue  # a cut answer: the whole one may follow
                try:
                    ack = read_ack(data)
                except AdapterError as exc:
                    raise RetriableDeliveryError(
                        f"{self._where()}: the answer is not an ACK ({exc.message})"
                    ) from None
                if ack.control_id == control_id:
                    return ack
                # an ACK for an earlier message (answered late): not ours, keep waiting

    def _socket(self) -> socket.socket:
        if self._sock is None:
            self._sock = self._connect()
        return self._sock

    def _connect(self) -> socket.socket:
        s = self.settings
        try:
            sock = socket.create_connection((s.host, s.port), timeout=s.connect_timeout_seconds)
        except OSError as exc:
            raise RetriableDeliveryError(f"{self._where()}: cannot connect ({exc})") from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self._ssl is not None:
            try:
                sock = self._ssl.wrap_socket(sock, server_hostname=s.host)
            except (OSError, ssl.SSLError) as exc:
                sock.close()
                raise RetriableDeliveryError(f"{self._where()}: TLS failed ({exc})") from None
        return sock

    def _drop(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None

    def _where(self) -> str:
        return f"mllp://{self.settings.host}:{self.settings.port}"


class _ClosedBeforeAnswer(Exception):
    pass


@register_destination("mllp")
def build_destination(
    facility: Facility, config: DestinationConfig, context: ConnectorContext
) -> MllpDestination:
    settings = parse_settings(
        MllpDestinationSettings, config.settings, where=f"destinations.{config.id}.settings"
    )
    return MllpDestination(config.id, settings, context.session_factory)


# -- listener ---------------------------------------------------------------------------------
class MllpListenerSettings(ConnectorSettings):
    kind: Literal["mllp"]
    host: str = Field("127.0.0.1", description="address to listen on (0.0.0.0: every one)")
    port: int = Field(ge=0, le=65535)
    max_connections: int = Field(
        64,
        ge=1,
        description="at the limit, the longest-silent connection not sending a message is "
        "closed to make room; when none is, the new one is closed",
    )
    idle_timeout_seconds: float = Field(
        600.0, gt=0, description="close a connection silent this long between messages"
    )
    frame_timeout_seconds: float = Field(
        60.0, gt=0, description="a message begun must be complete within this (slow senders)"
    )
    max_frame_bytes: int | None = Field(
        None,
        gt=0,
        description="refuse frames longer than this (default: ADAPTER_MAX_MESSAGE_BYTES)",
    )
    content_type: str = HL7_CONTENT_TYPE


class MllpListener:
    """Receives HL7 v2 messages for one source system. Run ``serve(pipeline)`` (blocks) or
    ``start(pipeline)`` (in a background thread, returns the bound port) and ``stop()``."""

    kind = "mllp"

    def __init__(self, source_id: str, settings: MllpListenerSettings) -> None:
        self.id = source_id
        self.settings = settings
        self.port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._open: set[_Peer] = set()
        self._said = SaidOnce(log)

    # -- check ------------------------------------------------------------------------------
    def check(self) -> CheckResult:
        """Reachable when a listener answers there already, or when the address is free."""
        s = self.settings

        def probe() -> str | None:
            try:
                with socket.create_connection((_connect_host(s.host), s.port), timeout=2):
                    return None  # someone listens: normally this adapter's own listener
            except OSError:
                pass
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind((s.host, s.port))
            return None

        return timed_check(self.id, "mllp-listener", probe)

    # -- running ----------------------------------------------------------------------------
    def serve(self, pipeline: Pipeline, *, ready: Callable[[int], None] | None = None) -> None:
        asyncio.run(self._serve(pipeline, ready))

    def start(self, pipeline: Pipeline, *, timeout: float = 10.0) -> int:
        bound = threading.Event()

        def on_ready(port: int) -> None:
            bound.set()

        self._thread = threading.Thread(
            target=self.serve,
            args=(pipeline,),
            kwargs={"ready": on_ready},
            daemon=True,
            name=f"mllp-{self.id}",
        )
        self._thread.start()
        if not bound.wait(timeout):
            raise RuntimeError(f"MLLP listener {self.id} did not start")
        assert self.port is not None
        return self.port

    def stop(self, timeout: float = 10.0) -> None:
        loop, stopped = self._loop, self._stopped
        if loop is not None and stopped is not None and not loop.is_closed():
            loop.call_soon_threadsafe(stopped.set)
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    async def _serve(self, pipeline: Pipeline, ready: Callable[[int], None] | None) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        limit = min(self.settings.max_frame_bytes or pipeline.max_bytes, pipeline.max_bytes)

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            peer = _Peer(writer)
            self._open.add(peer)
            try:
                if len(self._open) > self.settings.max_connections and not self._make_room(peer):
                    writer.close()
                    return
                await self._connection(pipeline, reader, peer, limit)
            finally:
                self._open.discard(peer)

        server = await asyncio.start_server(handle, self.settings.host, self.settings.port)
        self.port = server.sockets[0].getsockname()[1]
        log.info("MLLP listener for %s on %s:%s", self.id, self.settings.host, self.port)
        if ready is not None:
            ready(self.port)
        async with server:
            await self._stopped.wait()
            server.close()
            await server.wait_closed()

    def _make_room(self, newcomer: _Peer) -> bool:
        """Close the longest-silent idle connection for ``newcomer``; False: none may be."""
        victim = longest_silent(p for p in self._open if p is not newcomer)
        self._said.warning(
            "too-many",
            f"MLLP {self.id}: too many connections (max_connections="
            f"{self.settings.max_connections}): closing the longest-silent ones that are not "
            "sending a message, refusing new ones when every connection is busy",
        )
        if victim is None:
            return False
        victim.writer.close()
        return True

    async def _connection(
        self,
        pipeline: Pipeline,
        reader: asyncio.StreamReader,
        peer: _Peer,
        limit: int,
    ) -> None:
        writer = peer.writer
        frames = FrameReader(limit, keep=pipeline.keep_bytes)
        frame_began: float | None = None
        try:
            while True:
                wait = self.settings.idle_timeout_seconds
                if frame_began is not None:  # a message has begun: it must end in time
                    left = frame_began + self.settings.frame_timeout_seconds - time.monotonic()
                    wait = max(0.0, min(wait, left))
                try:
                    data = await asyncio.wait_for(reader.read(65536), wait)
                except TimeoutError:
                    if frame_began is not None:
                        self._said.warning(
                            "frame-timeout",
                            f"MLLP {self.id}: closed a connection whose message was not "
                            f"complete within {self.settings.frame_timeout_seconds:g} s "
                            "(frame_timeout_seconds)",
                        )
                    return
                if not data:
                    return
                peer.active = time.monotonic()
                received = frames.feed(data)
                if not frames.pending:
                    frame_began = None
                elif received or frame_began is None:
                    frame_began = peer.active
                for raw in received:
                    peer.busy = True
                    ack = await asyncio.get_running_loop().run_in_executor(
                        None, self._ingest, pipeline, raw
                    )
                    peer.busy = False
                    if ack is None:
                        return  # not stored: no ACK, the sender must send it again
                    writer.write(frame(ack))
                    await writer.drain()
        except (ConnectionError, OSError):
            return
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    def _ingest(self, pipeline: Pipeline, raw: bytes | Oversize | CutFrame) -> bytes | None:
        """Store the message through the pipeline; the ACK to send, or None if not stored.
        A frame over the limit is kept as its first bytes and answered AR; a frame cut off
        is kept as received, not translated, and answered AE."""
        try:
            if isinstance(raw, CutFrame):
                result = pipeline.refuse(
                    raw.data, self.id, cut_frame_issue(len(raw.data)), self.settings.content_type
                )
                return ack_for(raw.data, result)
            if isinstance(raw, Oversize):
                result = pipeline.refuse_oversize(raw, self.id, self.settings.content_type)
                return ack_for(raw.prefix, result, refused="AR")
            result = pipeline.ingest(raw, self.id, self.settings.content_type)
        except Exception as exc:  # storage or configuration failure: nothing was stored
            log.error("MLLP %s: message not stored (%s); no ACK sent", self.id, type(exc).__name__)
            return None
        return ack_for(raw, result)


def cut_frame_issue(size: int) -> Issue:
    return Issue(
        "error",
        "incomplete",
        f"the MLLP frame was cut off after {size} bytes: a new start block came before its end "
        "block. The bytes are kept as received and not translated; the sender must send the "
        "message again",
        location="body",
    )


class _Peer:
    """One connection to the listener: when it last sent something, whether a message of
    it is being stored (then it is never closed to make room)."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.active = time.monotonic()
        self.busy = False

    def silent_since(self) -> float | None:
        return None if self.busy or self.writer.is_closing() else self.active


def ack_for(raw: bytes, result: IngestResult, *, refused: Literal["AE", "AR"] = "AE") -> bytes:
    header = header_of(raw)
    if result.accepted:
        return build_ack(header, "AA")
    errors = [i for i in result.issues if i.severity in ("fatal", "error")] or [
        Issue("error", "processing", f"message {result.message_id} is {result.status}")
    ]
    return build_ack(header, refused, errors)


def _connect_host(host: str) -> str:
    return "127.0.0.1" if host in ("", "0.0.0.0") else ("::1" if host == "::" else host)


@register_source("mllp")
def build_listener(facility: Facility, source: SourceSystem) -> MllpListener:
    settings = parse_settings(
        MllpListenerSettings, source.connector, where=f"sources.{source.id}.connector"
    )
    return MllpListener(source.id, settings)

"""HL7 v2 over MLLP, outbound: the destination that sends and waits for the ACK.

It sends the inbound message the resources came from (``message: original``) or the same
with MSH-3..6 rewritten for the receiver (``message: rewrite-header``), always with its
original MSH-10, so that a resend after a lost ACK can be dropped by the receiver as a
duplicate. AA/CA = delivered; AE/AR = fatal, the ACK's errors kept as an OperationOutcome;
no ACK in time (or a dropped connection) = retriable.

Framing is in :mod:`adapter.connectors.mllp_framing`; the listener in
:mod:`adapter.inbound.mllp`.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from adapter.connectors.auth import TlsSettings, ssl_context
from adapter.connectors.base import CheckResult, ConnectorSettings, parse_settings, timed_check
from adapter.connectors.hl7_ack import header_of, read_ack
from adapter.connectors.mllp_framing import CutFrame, FrameReader, FrameTooLarge, frame
from adapter.consortium import Destination as DestinationConfig
from adapter.consortium import Facility
from adapter.errors import (
    AdapterError,
    DeliveryError,
    FatalDeliveryError,
    RetriableDeliveryError,
)
from adapter.hl7v2 import escape, parse_hl7v2
from adapter.outbound.base import ConnectorContext, DeliveryItem, ItemResult, register_destination

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)


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

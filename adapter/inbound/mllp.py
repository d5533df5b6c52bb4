"""HL7 v2 over MLLP, inbound: the listener that stores each received message before it
acknowledges it.

One message at a time per connection. The message goes through the pipeline, which
commits it (with its resources, or quarantined) before the ACK is written: AA when it was
processed, AE with the located errors when it was quarantined (it is kept and can be
reprocessed). When it cannot be stored (database down ...), no ACK is sent and the
connection is closed, so the sender keeps the message and sends it again.

Framing is in :mod:`adapter.connectors.mllp_framing`; the sending side (an MLLP
destination) in :mod:`adapter.outbound.mllp`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator

from adapter import audit
from adapter.audit.writer import record_now
from adapter.connectors.base import CheckResult, ConnectorSettings, parse_settings, timed_check
from adapter.connectors.hl7_ack import build_ack, header_of
from adapter.connectors.mllp_framing import CutFrame, FrameReader, frame
from adapter.consortium import Facility, SourceSystem
from adapter.errors import ConfigError, Issue
from adapter.inbound.base import register_source
from adapter.netlimits import SaidOnce, longest_silent
from adapter.oversize import Oversize
from adapter.peer_allow import AllowList, parse_allow_from
from adapter.pipeline.receipt import Channel, Receipt, address

if TYPE_CHECKING:
    from adapter.pipeline import IngestResult, Pipeline

log = logging.getLogger(__name__)

HL7_CONTENT_TYPE = "x-application/hl7-v2+er7"


# -- listener ---------------------------------------------------------------------------------
class MllpTls(ConnectorSettings):
    """MLLP over TLS (IHE ATNA secure node style): the listener's certificate and key, and
    optionally the CA whose client certificates it requires (mutual TLS)."""

    cert_file: Path = Field(description="the listener's certificate (PEM, chain first)")
    key_file: Path = Field(description="its private key (PEM)")
    client_ca_file: Path | None = Field(
        None,
        description="CA certificates (PEM): given, a sender must present a certificate "
        "issued by one of them, or the connection is closed in the handshake",
    )

    def context(self, where: str) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(self.cert_file, self.key_file)
            if self.client_ca_file is not None:
                context.load_verify_locations(self.client_ca_file)
                context.verify_mode = ssl.CERT_REQUIRED
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"{where}.tls: {type(exc).__name__}: {getattr(exc, 'strerror', None) or exc}"
            ) from None
        return context


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
    tls: MllpTls | None = Field(
        None, description="TLS on this port (certificate, key, optional client CA)"
    )
    allow_from: list[str] | None = Field(
        None,
        description="peer addresses or networks that may connect (10.12.0.0/16, 127.0.0.1); "
        "a connection from any other is closed unread, logged and audited. Left out: any peer",
    )

    refusal_digest_seconds: float = Field(
        60.0,
        gt=0,
        description="a refused address is logged and audited once; its repeats within this "
        "window are written as one digest record",
    )

    @field_validator("allow_from")
    @classmethod
    def _allow_list(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            parse_allow_from(value)  # checked with its file line at load (adapter.consortium)
        return value


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
        allow = settings.allow_from
        self._allowed: AllowList | None = None if allow is None else parse_allow_from(allow)
        self._refusals = RefusalWindows(settings.refusal_digest_seconds)
        tls = settings.tls
        self._tls = None if tls is None else tls.context(f"sources.{source_id}.connector")

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
            if self._allowed is not None and not self._allowed.allows(_peer_host(writer)):
                await self._refuse(pipeline, writer)
                return
            peer = _Peer(writer)
            self._open.add(peer)
            try:
                if len(self._open) > self.settings.max_connections and not self._make_room(peer):
                    writer.close()
                    return
                await self._connection(pipeline, reader, peer, limit)
            finally:
                self._open.discard(peer)

        server = await asyncio.start_server(
            handle, self.settings.host, self.settings.port, ssl=self._tls
        )
        self.port = server.sockets[0].getsockname()[1]
        log.info(
            "MLLP listener for %s on %s:%s%s",
            self.id,
            self.settings.host,
            self.port,
            " (TLS)" if self._tls is not None else "",
        )
        if self._allowed is None and not _is_loopback(self.settings.host):
            log.warning(
                "MLLP listener for %s accepts connections from any address on %s: "
                "set allow_from to the senders' addresses (docs/security.md)",
                self.id,
                self.settings.host,
            )
        if ready is not None:
            ready(self.port)
        async with server:
            await self._stopped.wait()
            server.close()
            await server.wait_closed()
        for host in self._refusals.pending():  # counted repeats are recorded, not lost
            self._digest_refusals(pipeline, host)

    async def _refuse(self, pipeline: Pipeline, writer: asyncio.StreamWriter) -> None:
        """Close a connection from a peer not in ``allow_from`` before reading a byte; log
        its address (nothing else is known of it) and audit the refusal.

        A peer that keeps reconnecting (a misconfigured sender retrying in a loop, a port
        scan) must not flood the log and the audit chain: the first refusal of an address
        is logged and audited at once, further ones within ``refusal_digest_seconds`` are
        counted and written as one digest record when that window ends (or the listener
        stops)."""
        peername = writer.get_extra_info("peername")
        peer = address(*peername[:2]) if isinstance(peername, tuple) else None
        host = peername[0] if isinstance(peername, tuple) else "?"
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()
        if self._refusals.first(host):
            log.warning("MLLP %s: refused a connection from %s (not in allow_from)", self.id, peer)
            self._record_refusal(pipeline, peer, 1)
            return
        due = self._refusals.count(host)
        if due is not None:  # the window's first repeat: its digest when the window ends
            asyncio.get_running_loop().call_later(due, self._digest_refusals, pipeline, host)

    def _digest_refusals(self, pipeline: Pipeline, host: str) -> None:
        repeated = self._refusals.close(host)
        if repeated:
            log.warning(
                "MLLP %s: refused %d more connections from %s in %g s (not in allow_from)",
                self.id,
                repeated,
                host,
                self.settings.refusal_digest_seconds,
            )
            self._record_refusal(pipeline, host, repeated)

    def _record_refusal(self, pipeline: Pipeline, peer: str | None, times: int) -> None:
        # written in a worker thread, not awaited: the connection is done with, and a
        # listener stopping meanwhile still lets the record finish (asyncio.run waits)
        asyncio.get_running_loop().run_in_executor(None, self._audit_refusal, pipeline, peer, times)

    def _audit_refusal(self, pipeline: Pipeline, peer: str | None, times: int = 1) -> None:
        detail: dict[str, str | int] = {"source": self.id, "reason": "not in allow_from"}
        if times > 1:
            detail["connections"] = times
        try:
            record_now(
                pipeline.factory,
                audit.AuditEvent(
                    action="connection.refused",
                    outcome="failure",
                    actor="anonymous",
                    subject=None,
                    correlation_id=None,
                    at=datetime.now(UTC),
                    detail=detail,
                    address=peer,
                    channel=Channel.MLLP.value,
                ),
            )
        except Exception as exc:  # the database is down: the refusal stands, logged above
            log.error("MLLP %s: refusal not audited (%s)", self.id, type(exc).__name__)

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
                        None, self._ingest, pipeline, raw, peer.address
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

    def _ingest(
        self, pipeline: Pipeline, raw: bytes | Oversize | CutFrame, peer: str | None = None
    ) -> bytes | None:
        """Store the message through the pipeline; the ACK to send, or None if not stored.
        A frame over the limit is kept as its first bytes and answered AR; a frame cut off
        is kept as received, not translated, and answered AE."""
        receipt = Receipt(self.id, Channel.MLLP, peer, self.settings.content_type)
        try:
            if isinstance(raw, CutFrame):
                issue = cut_frame_issue(len(raw.data))
                result = pipeline.refuse(raw.data, receipt, issue)
                return ack_for(raw.data, result)
            if isinstance(raw, Oversize):
                result = pipeline.refuse_oversize(raw, receipt)
                return ack_for(raw.prefix, result, refused="AR")
            # with the frames of other connections that arrive meanwhile (group.py)
            result = pipeline.group_commit.ingest(raw, receipt)
        except Exception as exc:  # storage or configuration failure: nothing was stored
            log.error("MLLP %s: message not stored (%s); no ACK sent", self.id, type(exc).__name__)
            return None
        return ack_for(raw, result)


class RefusalWindows:
    """Per peer address: when its refusal was last recorded, and the repeats counted since.
    A window lasts ``seconds``; its repeats are written when it ends (the caller's timer
    calls :meth:`close`). At most ``MAX_ADDRESSES`` are followed (a scan from a whole
    network): past that, quiet windows are forgotten first, else refusals are recorded
    one by one."""

    MAX_ADDRESSES = 4096

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._windows: dict[str, tuple[float, int]] = {}  # host -> (opened, repeats)

    def first(self, host: str) -> bool:
        """True: record this refusal now; False: it was counted (:meth:`count`)."""
        now = time.monotonic()
        window = self._windows.get(host)
        if window is not None and (window[1] or now - window[0] < self.seconds):
            return False  # inside the window, or its digest is still to be written
        if window is None and len(self._windows) >= self.MAX_ADDRESSES:
            quiet = next((h for h, (_, n) in self._windows.items() if not n), None)
            if quiet is None:
                return True
            del self._windows[quiet]
        self._windows[host] = (now, 0)
        return True

    def count(self, host: str) -> float | None:
        """Count a repeat; for the window's first repeat, the seconds until it ends (when
        the digest is due), else None."""
        opened, repeats = self._windows[host]
        self._windows[host] = (opened, repeats + 1)
        if repeats:
            return None
        return max(0.0, opened + self.seconds - time.monotonic())

    def close(self, host: str) -> int:
        """End ``host``'s window: the repeats counted in it."""
        _, repeats = self._windows.pop(host, (0.0, 0))
        return repeats

    def pending(self) -> list[str]:
        return [host for host, (_, repeats) in self._windows.items() if repeats]


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
        peername = writer.get_extra_info("peername")
        self.address = address(*peername[:2]) if isinstance(peername, tuple) else None
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


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def _peer_host(writer: asyncio.StreamWriter) -> str | None:
    peername = writer.get_extra_info("peername")
    return str(peername[0]) if isinstance(peername, tuple) and peername else None


def _connect_host(host: str) -> str:
    return "127.0.0.1" if host in ("", "0.0.0.0") else ("::1" if host == "::" else host)


@register_source("mllp")
def build_listener(facility: Facility, source: SourceSystem) -> MllpListener:
    settings = parse_settings(
        MllpListenerSettings, source.connector, where=f"sources.{source.id}.connector"
    )
    return MllpListener(source.id, settings)

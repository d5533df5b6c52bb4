"""Running the HTTP API: uvicorn with request-read timeouts and a connection limit.

uvicorn's h11 protocol times out a connection only while it is idle *between* requests
(keep-alive): a client that sends half a request line, half the headers or half a body is
kept for ever, and a thousand of them exhaust the file descriptors. ``GuardedH11Protocol``
adds, per connection:

* a header timeout: the request line and headers must be complete within
  ``ADAPTER_HTTP_HEADER_TIMEOUT_SECONDS`` of the connection being ready for a request;
* a body timeout: while the body is read, the client may be silent at most
  ``ADAPTER_HTTP_BODY_TIMEOUT_SECONDS`` between two reads;
* a connection limit, ``ADAPTER_HTTP_MAX_CONNECTIONS``, enforced as a connection is
  accepted: room is made by closing the longest-silent connection that has not sent a
  whole request (adapter/netlimits.py), else the new one gets a 503 and is closed.

A timed-out request is answered 408 when nothing was answered yet, and closed. Each kind
of event is logged once, then at most once a minute with a count.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from adapter.auth import certificates
from adapter.auth.certificates import PeerCertificate
from adapter.errors import ConfigError
from adapter.netlimits import RepeatFilter, SaidOnce, longest_silent
from adapter.settings import Settings

log = logging.getLogger("adapter.api.server")

_HEADERS, _BODY, _BUSY = "headers", "body", "busy"


@dataclass(frozen=True)
class HttpLimits:
    max_connections: int
    header_timeout: float
    body_timeout: float

    @classmethod
    def from_settings(cls, settings: Settings) -> HttpLimits:
        return cls(
            settings.http_max_connections,
            settings.http_header_timeout_seconds,
            settings.http_body_timeout_seconds,
        )


def _plain_answer(status: str, text: str, extra: str = "") -> bytes:
    body = text.encode("utf-8")
    return (
        f"HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\n{extra}"
        f"Connection: close\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode("ascii") + body


class GuardedH11Protocol(H11Protocol):
    limits: ClassVar[HttpLimits]
    said: ClassVar[SaidOnce]

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        presented = _client_certificate(transport)
        if presented is not None:  # each request of this connection finds it in its state
            self.app_state = {**self.app_state, certificates.STATE_KEY: presented}
        self._phase = _HEADERS
        self._active = time.monotonic()
        self._timer: asyncio.TimerHandle | None = None
        self._arm(self.limits.header_timeout)
        if len(self.connections) > self.limits.max_connections:
            self._make_room()

    def data_received(self, data: bytes) -> None:
        self._active = time.monotonic()
        super().data_received(data)
        self._follow()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._follow()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        super().connection_lost(exc)

    # -- the guard --------------------------------------------------------------------------
    def silent_since(self) -> float | None:
        if self._phase == _BUSY or self.transport.is_closing():
            return None
        return self._active

    def _follow(self) -> None:
        """Arm the timer that fits where the request stands."""
        if self.transport.is_closing():
            return
        state = self.conn.their_state
        if state is h11.IDLE:  # waiting for (the rest of) a request line and headers
            if self._phase != _HEADERS:
                self._phase = _HEADERS
                self._arm(self.limits.header_timeout)
        elif state is h11.SEND_BODY:  # every read restarts the body's clock
            self._phase = _BODY
            self._arm(self.limits.body_timeout)
        else:  # the request is in: the application has it
            self._phase = _BUSY
            self._cancel()

    def _arm(self, seconds: float) -> None:
        self._cancel()
        self._timer = self.loop.call_later(seconds, self._timed_out)

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _timed_out(self) -> None:
        self._timer = None
        if self.transport.is_closing() or self._phase == _BUSY:
            return
        if self._phase == _BODY:
            if self.flow.read_paused:  # the application is not reading: not the client's fault
                self._arm(self.limits.body_timeout)
                return
            self.said.warning(
                "body-timeout",
                "HTTP: closed a connection whose request body stalled for "
                f"{self.limits.body_timeout:g} s (ADAPTER_HTTP_BODY_TIMEOUT_SECONDS)",
            )
            text = "the request body stalled"
        else:
            self.said.warning(
                "header-timeout",
                "HTTP: closed a connection whose request line and headers were not complete "
                f"within {self.limits.header_timeout:g} s (ADAPTER_HTTP_HEADER_TIMEOUT_SECONDS)",
            )
            text = "the request was not complete in time"
        self._close(_plain_answer("408 Request Timeout", text))

    def _make_room(self) -> None:
        others = (
            c for c in self.connections if c is not self and isinstance(c, GuardedH11Protocol)
        )
        victim = longest_silent(others)
        self.said.warning(
            "too-many",
            f"HTTP: too many connections (ADAPTER_HTTP_MAX_CONNECTIONS="
            f"{self.limits.max_connections}): closing the longest-silent ones that have not "
            "sent a whole request, refusing new ones with 503 when every connection is busy",
        )
        if victim is not None:
            victim._close(_plain_answer("408 Request Timeout", "closed to make room"))
        else:
            self._close(
                _plain_answer(
                    "503 Service Unavailable", "too many connections", "Retry-After: 1\r\n"
                )
            )

    def _close(self, answer: bytes) -> None:
        self._cancel()
        self._phase = _BUSY
        if self.cycle is None or not self.cycle.response_started:
            self.transport.write(answer)
        self.transport.close()


def _client_certificate(transport: asyncio.Transport) -> PeerCertificate | None:
    """The certificate the TLS handshake accepted from the client (mTLS), if any."""
    ssl_object = transport.get_extra_info("ssl_object")
    der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    return PeerCertificate.from_der(der) if der else None


def tls_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's TLS arguments: HTTPS with ``ADAPTER_TLS_CERT_FILE``, and client
    certificates asked for (not required: clients with secrets connect too) and checked
    against ``ADAPTER_TLS_CLIENT_CA_FILE``."""
    if settings.tls_cert_file is None:
        if settings.tls_client_ca_file is not None:
            raise ConfigError("ADAPTER_TLS_CLIENT_CA_FILE needs ADAPTER_TLS_CERT_FILE (HTTPS)")
        return {}
    options: dict[str, Any] = {
        "ssl_certfile": str(settings.tls_cert_file),
        "ssl_keyfile": str(settings.tls_key_file) if settings.tls_key_file else None,
    }
    if settings.tls_client_ca_file is not None:
        options["ssl_ca_certs"] = str(settings.tls_client_ca_file)
        options["ssl_cert_reqs"] = ssl.CERT_OPTIONAL
    return options


def guarded_protocol(limits: HttpLimits) -> type[GuardedH11Protocol]:
    """A protocol class for one server: its limits and its once-said log lines."""
    attributes: dict[str, Any] = {"limits": limits, "said": SaidOnce(log)}
    return type("GuardedH11Protocol", (GuardedH11Protocol,), attributes)


def raise_open_file_limit(needed: int) -> None:
    """Make room for the connections in the process's open-file limit, or say it cannot."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        wanted = needed if hard == resource.RLIM_INFINITY else min(hard, needed)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
        except (ValueError, OSError):
            pass
        if soft < needed:
            log.warning(
                "the open-file limit (%s) is below ADAPTER_HTTP_MAX_CONNECTIONS plus a margin "
                "(%s): lower the setting or raise the limit (ulimit -n, LimitNOFILE=)",
                soft,
                needed,
            )


def run(
    application: Any,
    settings: Settings,
    *,
    host: str,
    port: int,
    workers: int = 1,
    before_fork: Callable[[], None] | None = None,
) -> None:
    """Serve ``application``; with ``workers`` > 1, that many pre-forked processes
    accepting on one listening socket (:func:`serve_forked`), ``before_fork`` run once in
    this process first (the schema migrated, the pool closed)."""
    import uvicorn

    limits = HttpLimits.from_settings(settings)
    raise_open_file_limit(limits.max_connections + 128)  # database, files, listeners
    # if descriptors run out anyway, asyncio would log every failed accept
    logging.getLogger("asyncio").addFilter(RepeatFilter())
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_config": None,
        # uvicorn's own access line prints query strings (names, birth dates);
        # adapter.api.access_log logs each request with the query values masked
        "access_log": False,
        "http": guarded_protocol(limits),
        "timeout_keep_alive": settings.http_keep_alive_seconds,
        "h11_max_incomplete_event_size": settings.http_max_header_bytes,
        **tls_options(settings),
    }
    if workers <= 1:
        uvicorn.run(application, **options)
        return
    if before_fork is not None:
        before_fork()
    serve_forked(uvicorn.Config(application, **options), workers)


def serve_forked(config: Any, workers: int) -> None:
    """``workers`` processes forked from this one (the app, its mappings and settings built
    once, shared copy-on-write), each running uvicorn on the same listening socket: the
    kernel hands each new connection to one of them. The Python interpreter runs one thread
    at a time, so one process uses one core however many requests it has in its thread
    pool; this uses as many cores as workers (docs/running.md, decision 0044).

    SIGTERM / SIGINT to this process is passed to every worker (each finishes its requests
    and stops, as uvicorn does alone). A worker that dies otherwise stops the others and
    this process exits with 1, for the service manager to restart the whole (systemd
    ``Restart=on-failure``): no half-sized server keeps running unnoticed."""
    import contextlib
    import os
    import signal

    import uvicorn

    sock = config.bind_socket()
    children: list[int] = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:  # the worker
            code = 1
            try:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                server = uvicorn.Server(config)
                server.run(sockets=[sock])
                code = 0 if server.started else 3  # 3: uvicorn's start-up failure
            except BaseException:
                log.exception("HTTP worker %d failed", os.getpid())
            finally:
                os._exit(code)
        children.append(pid)
    log.info("HTTP: %d worker processes %s on one socket", workers, children)
    stopping = False

    def stop(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    failed = False
    running = set(children)
    while running:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        running.discard(pid)
        if not stopping:
            log.error(
                "HTTP worker %d ended (exit %s): stopping the others",
                pid,
                os.waitstatus_to_exitcode(status),
            )
            failed = True
            stop(signal.SIGTERM, None)
    sock.close()
    if failed:
        raise SystemExit(1)

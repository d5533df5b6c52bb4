"""A fault-injecting "hospital" FHIR endpoint on loopback, for tests of the HTTP connectors.

A stdlib HTTP/1.1 server (kept-alive connections, optional TLS and client certificates)
whose answers the test chooses:

    server = FaultServer().start()                 # server.base_url = http://127.0.0.1:N/fhir
    server.plan(Answer(503, headers={"Retry-After": "7"}), Answer())   # next two answers
    server.plan(Answer(delay=2))                   # answer late (read timeouts)
    server.plan(Answer(drop=True))                 # cut the connection mid-request
    server.plan(Answer(400, body=outcome))         # refuse with an OperationOutcome
    server.plan(Answer(entry_status={"Observation/o2": 422}))   # one entry of a batch fails
    server.plan(Answer(400, echo_headers=True))    # the refusal quotes the request headers
    server.down(); server.up()                     # nothing listening, then again
    server.require_auth = ("bearer", "s3cret")     # or ("basic", user, password), ("oauth2",)
    server.requests                                # what arrived: method, path, headers, body
    server.max_in_flight                           # most requests answered at once

Unplanned requests get ``server.default`` (a normal answer): a PUT is echoed back with a
version, a Bundle gets a batch/transaction-response with one 200 (or ``entry_status``)
entry per request entry, ``GET /fhir/metadata`` a CapabilityStatement.

OAuth2: ``POST /token`` is a client-credentials token endpoint for ``client_id`` /
``client_secret`` (HTTP basic or form); tokens are ``tok-1``, ``tok-2`` ... valid for
``token_lifetime`` seconds; ``revoke_tokens()`` makes the issued ones answer 401.

An HTTP control API does the same from outside the process: ``POST /_control`` with
``{"plan": [{"status": 503, "headers": {...}}], "default": {...}, "require_auth": [...]}``,
``GET /_control/requests``. Run alone: ``python -m tests.peers.fault_server --port 8090``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import ssl
import threading
import time
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs


@dataclass
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None  # None: the normal body for the status
    delay: float = 0.0  # seconds before answering
    drop: bool = False  # close the connection without answering
    entry_status: dict[str, int] = field(default_factory=dict)  # "Type/id" -> status
    echo_headers: bool = False  # the error body quotes the request's headers (some gateways do)


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    client_port: int


def outcome(code: str, text: str, severity: str = "error") -> dict[str, Any]:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": severity, "code": code, "diagnostics": text}],
    }


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def _handle(self) -> None:
        fault = self.server.fault
        length = int(self.headers.get("Content-Length") or 0)
        path = self.path.split("?", 1)[0]
        if path.startswith("/_control"):
            self._control(fault, path, self.rfile.read(length) if length else b"")
            return
        if path == "/token" and self.command == "POST":
            self._token(fault, self.rfile.read(length) if length else b"")
            return
        with fault._lock:
            fault.in_flight += 1
            fault.max_in_flight = max(fault.max_in_flight, fault.in_flight)
        try:
            self._fhir(fault, path, length)
        finally:
            with fault._lock:
                fault.in_flight -= 1

    def _fhir(self, fault: FaultServer, path: str, length: int) -> None:
        answer = fault._next()
        if answer.drop:
            # read a part of the body, then hang up without a word
            if length:
                self.rfile.read(max(1, length // 2))
            fault._record(self, None)
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        fault._record(self, body)
        if answer.delay:
            time.sleep(answer.delay)
        refusal = fault._auth_refusal(self.headers.get("Authorization"))
        if refusal is not None:
            self._send(
                401, outcome("login", refusal), {"WWW-Authenticate": 'Bearer error="invalid_token"'}
            )
            return
        if answer.status != 200 or answer.body is not None:
            default = outcome(
                "exception" if answer.status >= 500 else "processing",
                f"planned answer {answer.status}",
            )
            if answer.echo_headers:
                headers = dict(self.headers.items())
                quoted = "; ".join(f"{k}: {v}" for k, v in headers.items())
                default["issue"][0]["diagnostics"] = f"cannot process the request ({quoted})"
                default["request"] = {"method": self.command, "headers": headers}
            self._send(
                answer.status, default if answer.body is None else answer.body, answer.headers
            )
            return
        self._send(*self._normal(path, body, answer), answer.headers)

    def _normal(self, path: str, body: Any, answer: Answer) -> tuple[int, Any]:
        if self.command == "GET" and path.endswith("/metadata"):
            return 200, {
                "resourceType": "CapabilityStatement",
                "status": "active",
                "kind": "instance",
                "fhirVersion": "4.0.1",
                "format": ["json"],
                "date": "2026-01-01",
            }
        if self.command == "PUT" and isinstance(body, dict):
            key = path.split("/fhir/", 1)[-1]
            status = answer.entry_status.get(key, 200)
            if status >= 300:
                return status, outcome("invalid", f"{key} refused")
            return 200, {**body, "meta": {"versionId": "1"}}
        if (
            self.command == "POST"
            and isinstance(body, dict)
            and body.get("resourceType") == "Bundle"
        ):
            entries = []
            for entry in body.get("entry") or []:
                key = (entry.get("request") or {}).get("url", "")
                status = answer.entry_status.get(key, 200)
                if status >= 300 and body.get("type") == "transaction":
                    return status, outcome("invalid", f"{key} refused")
                response: dict[str, Any] = {"status": f"{status}"}
                if status >= 300:
                    response["outcome"] = outcome("invalid", f"{key} refused")
                entries.append({"response": response})
            return 200, {
                "resourceType": "Bundle",
                "type": f"{body.get('type')}-response",
                "entry": entries,
            }
        if self.command == "GET":
            return 200, {"resourceType": "Bundle", "type": "searchset", "total": 0}
        return 400, outcome("not-supported", "the fault server does not do that")

    def _token(self, fault: FaultServer, raw: bytes) -> None:
        form = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
        client_id, secret = form.get("client_id"), form.get("client_secret")
        header = self.headers.get("Authorization") or ""
        if header.startswith("Basic "):
            client_id, _, secret = base64.b64decode(header[6:]).decode().partition(":")
        with fault._lock:
            fault.token_requests.append(form)
            ok = (client_id, secret) == (fault.client_id, fault.client_secret) and form.get(
                "grant_type"
            ) == "client_credentials"
            if ok:
                fault._issued += 1
                token = f"tok-{fault._issued}"
                fault._valid_tokens.add(token)
        if not ok:
            self._send(401, {"error": "invalid_client"})
            return
        self._send(
            200,
            {"access_token": token, "token_type": "Bearer", "expires_in": fault.token_lifetime},
            content_type="application/json",
        )

    def _control(self, fault: FaultServer, path: str, raw: bytes) -> None:
        if self.command == "GET" and path == "/_control/requests":
            self._send(200, [asdict(r) for r in fault.requests], content_type="application/json")
            return
        data = json.loads(raw or b"{}")
        if "plan" in data:
            fault.plan(*(Answer(**a) for a in data["plan"]))
        if "default" in data:
            fault.default = Answer(**data["default"])
        if "require_auth" in data:
            fault.require_auth = tuple(data["require_auth"]) if data["require_auth"] else None
        if data.get("reset"):
            fault.reset()
        self._send(200, {"ok": True}, content_type="application/json")

    def _send(
        self,
        status: int,
        body: Any,
        headers: dict[str, str] | None = None,
        content_type: str = "application/fhir+json",
    ) -> None:
        data = json.dumps(body).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            self.close_connection = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    fault: FaultServer


class FaultServer:
    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, *, tls: ssl.SSLContext | None = None
    ) -> None:
        self.host = host
        self.port = port
        self.tls = tls
        self._lock = threading.Lock()
        self._plan: list[Answer] = []
        self.default = Answer()
        self.requests: list[Received] = []
        self.require_auth: tuple[str, ...] | None = None
        self.client_id, self.client_secret = "adapter", "client-secret"
        self.token_lifetime = 3600
        self.token_requests: list[dict[str, str]] = []
        self._issued = 0
        self.in_flight = 0  # FHIR requests being answered now
        self.max_in_flight = 0  # the most at once (a client's concurrency limit)
        self._valid_tokens: set[str] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{self.host}:{self.port}/fhir"

    @property
    def token_url(self) -> str:
        return self.base_url.removesuffix("/fhir") + "/token"

    # -- life -------------------------------------------------------------------------------
    def start(self) -> FaultServer:
        server = _Server((self.host, self.port), _Handler)
        if self.tls is not None:
            server.socket = self.tls.wrap_socket(server.socket, server_side=True)
        server.fault = self
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def down(self) -> None:
        """Stop listening (connections are refused) until :meth:`up`."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def up(self) -> None:
        if self._server is None:
            self.start()

    stop = down

    # -- behaviour --------------------------------------------------------------------------
    def plan(self, *answers: Answer) -> None:
        with self._lock:
            self._plan.extend(answers)

    def reset(self) -> None:
        with self._lock:
            self._plan.clear()
            self.default = Answer()
            self.requests.clear()
            self.require_auth = None
            self.token_requests.clear()
            self._valid_tokens.clear()

    def revoke_tokens(self) -> None:
        with self._lock:
            self._valid_tokens.clear()

    def _next(self) -> Answer:
        with self._lock:
            return self._plan.pop(0) if self._plan else self.default

    def _record(self, handler: _Handler, body: Any) -> None:
        with self._lock:
            self.requests.append(
                Received(
                    handler.command,
                    handler.path,
                    dict(handler.headers.items()),
                    body,
                    handler.client_address[1],
                )
            )

    def _auth_refusal(self, header: str | None) -> str | None:
        """Why the Authorization header is refused, or None when it is accepted."""
        rule = self.require_auth
        if not rule:
            return None
        header = header or ""
        if rule[0] == "bearer":
            return None if header == f"Bearer {rule[1]}" else "bad bearer token"
        if rule[0] == "basic":
            pair = base64.b64encode(f"{rule[1]}:{rule[2]}".encode()).decode()
            return None if header == f"Basic {pair}" else "bad basic credentials"
        if rule[0] == "oauth2":
            with self._lock:
                token = header.removeprefix("Bearer ")
                ok = header.startswith("Bearer ") and token in self._valid_tokens
            return None if ok else "unknown or revoked token"
        return "unknown auth rule"


def main() -> None:  # pragma: no cover - manual use
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8090)
    args = parser.parse_args()
    server = FaultServer(port=args.port).start()
    print(f"fault server on {server.base_url} (control: POST /_control)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":  # pragma: no cover
    main()

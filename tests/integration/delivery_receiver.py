"""A small FHIR server on loopback for the delivery tests: it takes PUTs (and transaction /
batch Bundles of PUTs), remembers every request, and answers what a test scripts.

It counts at the receiving end: ``requests`` is every PUT in arrival order, ``stored`` the
last body per ``Type/id`` (a PUT on the same id updates, as on a real server).
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# (resource type, id, body, number of this PUT for that id) -> None (store, 200/201) or
# (status, headers, body) to answer instead
Rule = Callable[[str, str, dict[str, Any], int], "tuple[int, dict[str, str], Any] | None"]


@dataclass
class Put:
    resource_type: str
    resource_id: str
    body: dict[str, Any]
    status: int

    @property
    def ref(self) -> str:
        return f"{self.resource_type}/{self.resource_id}"

    @property
    def mark(self) -> str | None:
        """The test's version mark (``valueString``) of the body sent."""
        return self.body.get("valueString")


@dataclass
class Receiver:
    base_url: str = ""
    requests: list[Put] = field(default_factory=list)
    stored: dict[str, dict[str, Any]] = field(default_factory=dict)
    rule: Rule | None = None
    before: Callable[[str, str], None] | None = None  # called as each PUT arrives
    # (number of this Bundle POST) -> None (take its entries) or (status, headers, body) to
    # answer the whole Bundle instead, storing nothing
    bundle_rule: Callable[[int], tuple[int, dict[str, str], Any] | None] | None = None
    bundles: list[int] = field(default_factory=list)  # the status of each Bundle POST
    entries: list[dict[str, Any]] = field(default_factory=list)  # of each Bundle taken
    lock: threading.Lock = field(default_factory=threading.Lock)

    def put(
        self, resource_type: str, resource_id: str, body: dict[str, Any]
    ) -> tuple[int, dict[str, str], Any]:
        if self.before is not None:
            self.before(resource_type, resource_id)
        ref = f"{resource_type}/{resource_id}"
        with self.lock:
            count = sum(1 for r in self.requests if r.ref == ref) + 1
        answer = self.rule(resource_type, resource_id, body, count) if self.rule else None
        status = answer[0] if answer else (200 if ref in self.stored else 201)
        with self.lock:
            self.requests.append(Put(resource_type, resource_id, body, status))
            if 200 <= status < 300:
                self.stored[ref] = body
        return answer or (status, {}, None)

    def refs(self) -> list[str]:
        with self.lock:
            return [r.ref for r in self.requests if 200 <= r.status < 300]


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go in two writes

        def log_message(self, *_args: object) -> None:  # quiet
            pass

        def _reply(
            self, status: int, body: Any = None, headers: dict[str, str] | None = None
        ) -> None:
            data = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/fhir+json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> dict[str, Any]:
            length = int(self.headers.get("Content-Length") or 0)
            return json.loads(self.rfile.read(length) or b"{}")

        def do_GET(self) -> None:
            if self.path.rstrip("/").endswith("/metadata"):
                self._reply(200, {"resourceType": "CapabilityStatement", "status": "active"})
            else:
                self._reply(404)

        def do_PUT(self) -> None:
            parts = self.path.strip("/").split("/")
            body = self._body()
            status, headers, answer = receiver.put(parts[-2], parts[-1], body)
            self._reply(status, answer, headers)

        def do_POST(self) -> None:
            bundle = self._body()
            with receiver.lock:
                number = len(receiver.bundles) + 1
            whole = receiver.bundle_rule(number) if receiver.bundle_rule else None
            with receiver.lock:
                receiver.bundles.append(whole[0] if whole else 200)
            if whole is not None:
                self._reply(whole[0], whole[2], whole[1])
                return
            entries = []
            with receiver.lock:
                receiver.entries.extend(bundle.get("entry") or [])
            for entry in bundle.get("entry") or []:
                resource_type, resource_id = entry["request"]["url"].split("/")[-2:]
                status, _headers, outcome = receiver.put(
                    resource_type, resource_id, entry["resource"]
                )
                answer: dict[str, Any] = {"status": str(status)}
                if outcome is not None:
                    answer["outcome"] = outcome
                entries.append({"response": answer})
            kind = (
                "transaction-response" if bundle.get("type") == "transaction" else "batch-response"
            )
            self._reply(200, {"resourceType": "Bundle", "type": kind, "entry": entries})

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # a client that went away (a killed worker) is part of the tests, not an error
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@contextmanager
def running_receiver(port: int = 0) -> Iterator[Receiver]:
    receiver = Receiver()
    server = _Server(("127.0.0.1", port), _handler(receiver))
    receiver.base_url = f"http://127.0.0.1:{server.server_address[1]}/fhir"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


def outcome(code: str, text: str) -> dict[str, Any]:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": code, "diagnostics": text}],
    }

"""A FHIR server on loopback that offers Bulk Data ``$export`` (kick-off, status polling
with ``Retry-After``, NDJSON files, ``deleted[]``) and the searches sync asks of a source
(``_lastUpdated`` ranges, ``identifier``, ``_summary=count``) over resources a test gives.
``omit`` leaves resources out of the export only (a server that lost them: the gaps)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


def _when(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


@dataclass
class BulkServer:
    resources: list[dict[str, Any]] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)  # "Type/id" deleted at the source
    omit: set[str] = field(default_factory=set)  # "Type/id" left out of the export
    polls_before_ready: int = 2
    base_url: str = ""
    kick_offs: int = 0
    polls: int = 0
    down: bool = False

    def _matches(self, resource: dict[str, Any], query: dict[str, list[str]]) -> bool:
        stamp = _when(resource["meta"]["lastUpdated"])
        for bound in query.get("_lastUpdated", []):
            prefix, value = bound[:2], _when(bound[2:])
            if not {
                "ge": stamp >= value,
                "gt": stamp > value,
                "le": stamp <= value,
                "lt": stamp < value,
            }[prefix]:
                return False
        for wanted in query.get("identifier", []):
            system, _, value = wanted.partition("|")
            if not any(
                i.get("system") == system and i.get("value") == value
                for i in resource.get("identifier", [])
            ):
                return False
        return True

    def answer(self, path: str, query: dict[str, list[str]]) -> tuple[int, dict[str, str], bytes]:
        if path.endswith("/metadata"):
            return 200, {}, json.dumps({"resourceType": "CapabilityStatement"}).encode()
        if path.endswith("/$export"):
            self.kick_offs += 1
            return 202, {"Content-Location": f"{self.base_url}/_status/1"}, b""
        if path.endswith("/_status/1"):
            self.polls += 1
            if self.polls <= self.polls_before_ready:
                return 202, {"Retry-After": "1", "X-Progress": "working"}, b""
            manifest = {
                "transactionTime": "2026-11-21T00:00:00Z",
                "request": f"{self.base_url}/$export",
                "requiresAccessToken": False,
                "output": [{"type": "Observation", "url": f"{self.base_url}/_files/out.ndjson"}],
                "deleted": [{"type": "Bundle", "url": f"{self.base_url}/_files/deleted.ndjson"}],
                "error": [],
            }
            return 200, {}, json.dumps(manifest).encode()
        if path.endswith("/_files/out.ndjson"):
            lines = [
                json.dumps(r)
                for r in self.resources
                if f"{r['resourceType']}/{r['id']}" not in self.omit
            ]
            return 200, {}, ("\n".join(lines) + "\n").encode()
        if path.endswith("/_files/deleted.ndjson"):
            bundle = {
                "resourceType": "Bundle",
                "type": "transaction",
                "meta": {"lastUpdated": "2026-11-20T10:00:00+08:00"},
                "entry": [{"request": {"method": "DELETE", "url": ref}} for ref in self.deleted],
            }
            return 200, {}, (json.dumps(bundle) + "\n").encode()
        if path.endswith("/Observation"):
            found = [r for r in self.resources if self._matches(r, query)]
            bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset"}
            bundle["total"] = len(found)
            if query.get("_summary") != ["count"]:
                bundle["entry"] = [{"resource": r, "search": {"mode": "match"}} for r in found]
            return 200, {}, json.dumps(bundle).encode()
        return 404, {}, b"{}"


@contextmanager
def running_bulk_server(server: BulkServer) -> Iterator[BulkServer]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_args: object) -> None:
            pass

        def do_GET(self) -> None:
            if server.down:
                self.connection.close()
                return
            parts = urlsplit(self.path)
            status, headers, body = server.answer(parts.path, parse_qs(parts.query))
            self.send_response(status)
            for name, value in {"Content-Type": "application/fhir+json", **headers}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.base_url = f"http://127.0.0.1:{httpd.server_address[1]}/fhir"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        httpd.shutdown()
        httpd.server_close()

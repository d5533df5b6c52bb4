"""A fast FHIR sink on loopback: answers every transaction Bundle ``200 OK`` per entry
without storing anything, so a delivery benchmark measures the adapter, not the server.

    python tests/tools/fhir_sink.py [--processes 2] [--log DIR] [--delay-ms 0]

Prints ``listening http://127.0.0.1:PORT/fhir`` once ready. ``--processes`` pre-forked
processes accept on one listening socket (a single-threaded server is ``--processes 1``).
With ``--log DIR`` every process appends one line per received entry to ``DIR/<pid>.log``
(``Type/id sequence``), flushed before the answer is written: a test counts what arrived.
``--delay-ms`` answers every request that late (a destination's latency, no CPU spent).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
from pathlib import Path
from typing import IO

try:
    import orjson

    def _loads(raw: bytes) -> object:
        return orjson.loads(raw)

    def _dumps(value: object) -> bytes:
        return orjson.dumps(value)
except ImportError:  # pragma: no cover

    def _loads(raw: bytes) -> object:
        return json.loads(raw)

    def _dumps(value: object) -> bytes:
        return json.dumps(value).encode()


SEQUENCE_URL = "https://yigongti-fhir-adapter.github.io/fhir/StructureDefinition/delivery-sequence"
METADATA = _dumps({"resourceType": "CapabilityStatement", "status": "active", "kind": "instance"})


def _answer(status: str, body: bytes) -> bytes:
    return (
        f"HTTP/1.1 {status}\r\nContent-Type: application/fhir+json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def _entries(bundle: object, log: IO[str] | None) -> int:
    entries = bundle.get("entry") if isinstance(bundle, dict) else None
    if not isinstance(entries, list):
        return 0
    if log is not None:
        for entry in entries:
            numbers = [
                str(e.get("valueInteger"))
                for e in entry.get("extension") or []
                if e.get("url") == SEQUENCE_URL
            ]
            log.write(f"{entry['request']['url']} {','.join(numbers) or '-'}\n")
        log.flush()
    return len(entries)


async def _serve(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    log: IO[str] | None,
    delay: float = 0.0,
) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            method, path = lines[0].split(b" ")[:2]
            length = 0
            for line in lines[1:]:
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            body = await reader.readexactly(length) if length else b""
            if delay:  # a destination's latency (a WAN link, a busy server): no CPU spent
                await asyncio.sleep(delay)
            if method == b"POST":
                n = _entries(_loads(body), log)
                out = {
                    "resourceType": "Bundle",
                    "type": "transaction-response",
                    "entry": [{"response": {"status": "200 OK"}}] * n,
                }
                writer.write(_answer("200 OK", _dumps(out)))
            elif method == b"GET" and path.endswith(b"/metadata"):
                writer.write(_answer("200 OK", METADATA))
            elif method == b"PUT":
                if log is not None:
                    log.write(path.decode().split("/fhir/", 1)[-1] + " -\n")
                    log.flush()
                writer.write(_answer("200 OK", b"{}"))
            else:
                writer.write(_answer("404 Not Found", b"{}"))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


def _child(sock: socket.socket, log_dir: Path | None, delay: float) -> None:
    log = (log_dir / f"{os.getpid()}.log").open("a", encoding="utf-8") if log_dir else None

    async def main() -> None:
        server = await asyncio.start_server(lambda r, w: _serve(r, w, log, delay), sock=sock)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--log", type=Path, default=None)
    ap.add_argument("--delay-ms", type=float, default=0.0, help="answer each request this late")
    args = ap.parse_args()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(256)
    sock.setblocking(False)
    children = []
    for _ in range(max(1, args.processes)):
        pid = os.fork()
        if pid == 0:
            try:
                _child(sock, args.log, args.delay_ms / 1000)
            finally:
                os._exit(0)
        children.append(pid)
    print(f"listening http://127.0.0.1:{sock.getsockname()[1]}/fhir", flush=True)

    def stop(*_: object) -> None:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for _ in children:
        os.wait()


if __name__ == "__main__":
    main()

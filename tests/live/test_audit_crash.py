"""SIGKILL during ingest loses no audit record of an answered request: a real ``adapter
serve`` takes messages from several clients at once and is killed mid-stream; every
message the server answered has its receipt, translation and settlement in the audit
log, and the log still verifies (nothing half-written, no gap in the chain)."""

from __future__ import annotations

import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from sqlalchemy import String, text
from sqlalchemy.pool import NullPool

from adapter.audit.verify import verify
from adapter.store import make_engine, session_factory
from adapter.store.types import MessageId
from tests.live.server import LiveServer

ROOT = Path(__file__).resolve().parents[2]
ORU = (ROOT / "fixtures" / "hl7v2" / "oru" / "std-hl7v2" / "two-orders.hl7").read_bytes()
CLIENTS = 4
KILL_AFTER = 12  # answers


def _message(n: int) -> bytes:
    return ORU.replace(b"QSLIS202611220019", f"CRASH{n:012d}".encode(), 1)


def test_sigkill_during_ingest_loses_no_record_of_an_answered_request(
    database_url: str, tmp_path: Path
) -> None:
    answered: dict[str, str] = {}  # message id -> X-Request-Id
    lock = threading.Lock()
    killed = threading.Event()
    server = LiveServer(database_url, tmp_path).start()
    try:

        def send(worker: int) -> None:
            with httpx.Client(timeout=30) as http:
                for n in range(worker * 1000, worker * 1000 + 200):
                    if killed.is_set():
                        return
                    try:
                        answer = http.post(
                            server.url("/ingest"),
                            content=_message(n),
                            headers={"X-Source-System": "std-hl7v2", "X-Request-Id": f"c-{n}"},
                        )
                    except httpx.HTTPError:
                        return  # the server is gone
                    if answer.status_code in (200, 202):
                        with lock:
                            answered[answer.json()["message_id"]] = answer.headers["x-request-id"]
                            if len(answered) >= KILL_AFTER and not killed.is_set():
                                killed.set()
                                assert server.process is not None
                                server.process.send_signal(signal.SIGKILL)

        with ThreadPoolExecutor(CLIENTS) as pool:
            list(pool.map(send, range(CLIENTS)))
    finally:
        server.stop()
    assert killed.is_set() and len(answered) >= KILL_AFTER
    assert server.process is not None and server.process.returncode == -signal.SIGKILL

    engine = make_engine(database_url, poolclass=NullPool)
    try:
        factory = session_factory(engine)
        with factory() as session:
            rows = session.execute(
                text("SELECT message_id, action, correlation_id FROM audit_record").columns(
                    message_id=MessageId(), action=String(), correlation_id=String()
                )
            ).all()
            report = verify(session)
    finally:
        engine.dispose()
    kept: dict[str, set[str]] = {}
    for message_id, action, correlation in rows:
        if message_id in answered:
            assert correlation == answered[message_id]
            kept.setdefault(message_id, set()).add(action)
    for message_id in answered:
        assert {"message.received", "message.translated", "message.stored"} <= kept.get(
            message_id, set()
        ), message_id
    assert report.ok, [str(f) for f in report.findings]

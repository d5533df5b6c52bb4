"""The server's drain in a process of its own (decision 0102): with translation workers,
``adapter serve`` stores the documents answered on receipt in a child process (its
``adapter-drain`` thread), woken by the receipts; the server's own threads only receive.
Killed, the server takes its drain process with it (the wake-up pipe closes). Runs on
SQLite and, in the ``-m db`` pass, on PostgreSQL."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

import httpx

from tests.integration.test_long_values import long_oru
from tests.live.server import LiveServer
from tests.live.test_answer_on_receipt_live import ASYNC, START, _final

WORKERS = {"ADAPTER_TRANSLATE_WORKERS": "1"}


def _thread_names(pid: int) -> set[str]:
    names: set[str] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):  # the thread ended meanwhile
            names.add((task / "comm").read_text().strip())
    return names


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            found += [int(c) for c in (task / "children").read_text().split()]
    return found


def _alive(pid: int) -> bool:
    """Not yet ended: its leader a zombie is not enough, its other threads may still be
    exiting (the pipe closes with the last)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        threads = len(list(Path(f"/proc/{pid}/task").iterdir()))
    except OSError:
        return False
    return state != "Z" or threads > 1


def _post_all(http: httpx.Client, server: LiveServer, prefix: str, count: int) -> list[str]:
    ids = []
    for n in range(count):
        answer = http.post(
            server.url("/ingest"),
            content=long_oru(control=f"{prefix}{n:04d}"),
            headers={"X-Source-System": "std-hl7v2", "Content-Type": "application/hl7-v2", **ASYNC},
        )
        assert answer.status_code == 202 and answer.json()["status"] == "received"
        ids.append(answer.json()["message_id"])
    return ids


def test_with_workers_the_drain_stores_in_a_process_of_its_own(
    database_url: str, tmp_path: Path
) -> None:
    with (
        LiveServer(database_url, tmp_path, env=WORKERS, start_timeout=START) as server,
        httpx.Client(timeout=120) as http,
    ):
        assert server.process is not None
        server_started = time.monotonic()
        ids = _post_all(http, server, "PROC", 12)
        for message_id in ids:
            shown = _final(http, server, message_id)
            assert shown["status"] == "processed" and shown["resources"]
        pid = server.process.pid
        assert "adapter-drain" not in _thread_names(pid)  # not the server's own thread
        drains = [c for c in _children(pid) if "adapter-drain" in _thread_names(c)]
        assert len(drains) == 1
        drain = drains[0]
        # the same bytes again: the earlier message, no second store
        again = http.post(
            server.url("/ingest"),
            content=long_oru(control="PROC0000"),
            headers={"X-Source-System": "std-hl7v2", "Content-Type": "application/hl7-v2", **ASYNC},
        )
        assert again.status_code == 202 and again.json()["message_id"] == ids[0]
        # the drain process killed: started again at the next receipt, which it stores
        os.kill(drain, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while _alive(drain):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        time.sleep(max(0.0, server_started + 10.5 - time.monotonic()))  # RESTART_SECONDS
        late = _post_all(http, server, "LATE", 1)
        assert _final(http, server, late[0])["status"] == "processed"
        drains = [c for c in _children(pid) if "adapter-drain" in _thread_names(c)]
        assert len(drains) == 1 and drains[0] != drain
        drain = drains[0]
        os.kill(pid, signal.SIGKILL)  # no shutdown: the pipe closes with the process
        server.process.wait()
        deadline = time.monotonic() + 60
        while _alive(drain):
            assert time.monotonic() < deadline, "the drain process outlived its server"
            time.sleep(0.1)


def test_without_workers_the_drain_is_a_thread_of_the_server(
    database_url: str, tmp_path: Path
) -> None:
    env = {**WORKERS, "ADAPTER_INGEST_DRAIN_PROCESS": "false"}
    with (
        LiveServer(database_url, tmp_path, env=env, start_timeout=START) as server,
        httpx.Client(timeout=120) as http,
    ):
        assert server.process is not None
        ids = _post_all(http, server, "THRD", 3)
        for message_id in ids:
            assert _final(http, server, message_id)["status"] == "processed"
        assert "adapter-drain" in _thread_names(server.process.pid)

"""``adapter serve --workers N``: N forked processes on one socket (docs/running.md,
decision 0044). What each worker receives is stored once; a stop reaches every worker; what
several workers cannot share refuses to start."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import httpx

from tests.live.server import LiveServer

ROOT = Path(__file__).resolve().parents[2]
CBC = (ROOT / "fixtures" / "hl7v2" / "oru" / "std-hl7v2" / "cbc-basic.hl7").read_bytes()


def _message(n: int) -> bytes:
    """The CBC report with its own message, order and specimen numbers."""
    return CBC.replace(b"L2611200015", b"L9%08d" % n).replace(
        b"QSLIS202611200001", b"QSLIS9%011d" % n
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie of this test's process tree counts as gone
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


def test_two_workers_store_every_message_once_and_stop_together(
    database_url: str, tmp_path: Path
) -> None:
    answers: list[int] = []
    lock = threading.Lock()

    def client(numbers: range, url: str) -> None:
        with httpx.Client(timeout=120) as http:
            for n in numbers:
                answer = http.post(
                    url,
                    content=_message(n),
                    headers={"X-Source-System": "std-hl7v2", "Content-Type": "application/hl7-v2"},
                )
                with lock:
                    answers.append(answer.status_code)

    with LiveServer(database_url, tmp_path, args=["--workers", "2"]) as server:
        url = server.url("/ingest")
        threads = [threading.Thread(target=client, args=(range(k, 12, 3), url)) for k in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        # the same bytes again, to either worker: recognised as received
        again = httpx.post(
            url,
            content=_message(0),
            headers={"X-Source-System": "std-hl7v2", "Content-Type": "application/hl7-v2"},
        )
        listed = httpx.get(server.url("/messages")).json()
        log = server.log_text()
        found = re.search(r"HTTP: 2 worker processes \[(\d+), (\d+)\]", log)
        assert found, log
        workers = [int(found.group(1)), int(found.group(2))]
        assert all(_alive(pid) for pid in workers)
        # SIGTERM to the parent, as systemd stops it; each worker finishes and stops (a
        # loaded machine may take a while: no time limit is the point here)
        assert server.process is not None
        server.process.terminate()
        server.process.wait(timeout=300)
    assert answers == [202] * 12
    assert again.status_code == 202 and again.json()["duplicate"] is True
    assert listed["total"] == 12
    assert all(item["status"] != "quarantined" for item in listed["items"])
    assert server.process.returncode == 0
    assert not any(_alive(pid) for pid in workers), "a worker outlived the server"


def test_workers_refused_with_the_delivery_worker_in_process(
    database_url: str, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADAPTER_")}
    env.update(
        {
            "ADAPTER_DATABASE_URL": database_url,
            "ADAPTER_AUTH": "off",
            "ADAPTER_DELIVER_IN_PROCESS": "true",
        }
    )
    done = subprocess.run(
        [sys.executable, "-m", "adapter.cli", "serve", "--port", "0", "--workers", "2"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        timeout=600,  # a loaded machine loads the mappings slowly
    )
    assert done.returncode == 2
    assert b"ADAPTER_DELIVER_IN_PROCESS" in done.stderr + done.stdout

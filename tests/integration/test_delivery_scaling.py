"""Several real worker processes (``adapter worker``) on one PostgreSQL queue, delivering to a
loopback sink of two processes (tests/tools/fhir_sink.py) in transaction Bundles: every
resource arrives exactly once, every sequence number is given once with no gap, each
patient's rows are numbered in queue order, and no row is left in flight (decision 0040)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from adapter.store import outbox
from adapter.store.models import DeliveryAttempt, DeliveryDestination, Outbox
from tests.integration.delivery_support import DEST, observation, queue, write_consortium
from tests.integration.test_delivery_faults import _adapter_command

SINK = Path(__file__).resolve().parent.parent / "tools" / "fhir_sink.py"
WORKERS = 4


def _start_sink(logs: Path) -> tuple[subprocess.Popen[str], str]:
    sink = subprocess.Popen(
        [sys.executable, str(SINK), "--processes", "2", "--log", str(logs)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert sink.stdout is not None
    first = sink.stdout.readline().strip()
    assert first.startswith("listening "), first
    return sink, first.split(" ", 1)[1]


def _received(logs: Path) -> list[tuple[str, list[int]]]:
    """(Type/id, sequence numbers) of every entry the sink answered."""
    out = []
    for log in logs.glob("*.log"):
        for line in log.read_text().splitlines():
            ref, numbers = line.split(" ")
            out.append((ref, [] if numbers == "-" else [int(n) for n in numbers.split(",")]))
    return out


def test_four_worker_processes_deliver_every_row_once_in_order(
    engine: Engine,
    database_url: str,
    session_factory: sessionmaker[Session],
    tmp_path: Path,
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("several workers need PostgreSQL (SQLite runs one)")
    patients, per_patient, corrected = 60, 4, 15
    queue(
        session_factory,
        [
            observation(f"o{p}-{k}", f"p{p}", "v1")
            for k in range(per_patient)
            for p in range(patients)
        ],
    )
    # a correction of some results queued behind them: delivered once, as the newer version
    queue(session_factory, [observation(f"o{p}-0", f"p{p}", "v2") for p in range(corrected)])
    with session_factory.begin() as session:  # held until every worker is connected
        outbox.set_paused(session, DEST, paused=True, by="test", now=datetime.now(UTC))

    logs = tmp_path / "sink"
    logs.mkdir()
    sink, base_url = _start_sink(logs)
    config = write_consortium(tmp_path / "consortium.yaml", base_url, bundle="transaction")
    tag = f"deliv-scale-{uuid.uuid4().hex[:8]}"
    processes: list[subprocess.Popen[bytes]] = []
    out = (tmp_path / "workers.log").open("w")
    try:
        for n in range(WORKERS):
            url = make_url(database_url).update_query_dict({"application_name": f"{tag}-{n}"})
            env = {
                **os.environ,
                "ADAPTER_DATABASE_URL": url.render_as_string(hide_password=False),
                "ADAPTER_CONFIG": str(config),
                "ADAPTER_LOG_LEVEL": "WARNING",
            }
            command = [*_adapter_command(), "worker", "--batch", "10", "--poll-seconds", "0.05"]
            processes.append(subprocess.Popen(command, env=env, stdout=out, stderr=out))
        connected = text(
            "SELECT count(DISTINCT application_name) FROM pg_stat_activity "
            "WHERE application_name LIKE :tag"
        )
        deadline = time.monotonic() + 60
        while True:
            with engine.connect() as conn:
                if conn.scalar(connected, {"tag": f"{tag}-%"}) == WORKERS:
                    break
            assert time.monotonic() < deadline, (tmp_path / "workers.log").read_text()
            assert all(p.poll() is None for p in processes)
            time.sleep(0.05)
        with session_factory.begin() as session:
            outbox.set_paused(session, DEST, paused=False, by="test", now=datetime.now(UTC))

        total = patients * per_patient + corrected
        deadline = time.monotonic() + 120
        active = select(func.count()).select_from(Outbox).where(Outbox.state != "delivered")
        while True:
            with session_factory() as session:
                if session.scalar(active) == 0:
                    break
            assert time.monotonic() < deadline, (tmp_path / "workers.log").read_text()
            time.sleep(0.05)
        for p in processes:
            p.send_signal(signal.SIGTERM)
        for p in processes:
            assert p.wait(30) == 0, (tmp_path / "workers.log").read_text()
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
        out.close()
        sink.terminate()
        sink.wait(10)

    received = _received(logs)
    refs = Counter(ref for ref, _ in received)
    expected = {f"Observation/o{p}-{k}" for k in range(per_patient) for p in range(patients)}
    assert set(refs) == expected and set(refs.values()) == {1}  # none lost, none twice

    with session_factory() as session:
        rows = session.execute(select(Outbox).order_by(Outbox.id)).scalars().all()
        last = session.scalar(select(DeliveryDestination.last_sequence))
        by_worker = dict(
            session.execute(
                select(DeliveryAttempt.worker, func.count()).group_by(DeliveryAttempt.worker)
            ).all()
        )
    assert len(rows) == total
    assert all(r.state == "delivered" and r.claimed_by is None for r in rows)  # none in flight
    # the corrections were sent once, as the current version, with the row before them:
    # in the same claim (decision 0070: a patient's queue is claimed whole; the one entry
    # carries both rows' numbers) or settled after it without a number (coalesced)
    fixed = {f"o{p}-0" for p in range(corrected)}
    coalesced = [r for r in rows if r.sequence is None]
    assert {r.resource_id for r in coalesced} <= fixed
    assert all(r.sent_version_id == 2 for r in rows if r.resource_id in fixed)
    entries = {ref: given for ref, given in received}
    for resource_id in fixed:
        numbered = sorted(r.sequence for r in rows if r.resource_id == resource_id and r.sequence)
        assert sorted(entries[f"Observation/{resource_id}"]) == numbered
    # every number given once, 1..last without a gap, and each the one the sink saw
    numbers = sorted(n for _, given in received for n in given)
    assert numbers == list(range(1, total - len(coalesced) + 1))
    assert last == total - len(coalesced)
    assert sorted(r.sequence for r in rows if r.sequence is not None) == numbers
    # a patient's rows were numbered (claimed, sent) in the order they were queued
    per_patient_numbers: dict[str, list[int]] = defaultdict(list)
    for r in rows:
        if r.sequence is not None:
            per_patient_numbers[r.order_key].append(r.sequence)
    assert all(seq == sorted(seq) for seq in per_patient_numbers.values())
    assert sum(by_worker.values()) == total and len(by_worker) >= 2, by_worker
    print(
        f"\n{WORKERS} worker processes: {total} rows, {len(received)} entries received, "
        f"{len(refs)} distinct, 0 twice, numbers 1..{last}, {len(coalesced)} coalesced after "
        f"their claim; attempts by worker "
        f"{sorted(by_worker.values(), reverse=True)}"
    )

"""Faults: a destination that keeps failing (circuit breaker), several workers on one queue
(PostgreSQL), a worker process killed with SIGKILL in the middle of a batch, a second
worker on SQLite. Everything is counted at the receiving end."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from adapter import store
from adapter.delivery.breaker import BreakerConfig
from adapter.delivery.service import SingleWorkerLock, start_exclusive
from adapter.errors import ConfigError
from adapter.store import make_engine
from adapter.store.models import DeliveryAttempt, Outbox
from tests.integration.delivery_receiver import Receiver
from tests.integration.delivery_support import (
    DEST,
    Clock,
    breaker_state,
    observation,
    queue,
    rows,
    worker,
    write_consortium,
)


def test_breaker_opens_after_failures_pauses_and_probes(
    session_factory: sessionmaker[Session], receiver: Receiver
) -> None:
    ids = queue(session_factory, [observation(f"o{n}", f"p{n}", "v1") for n in range(6)])
    receiver.rule = lambda t, i, body, n: (503, {}, None)
    clock = Clock()
    w = worker(
        session_factory,
        receiver.base_url,
        clock=clock,
        batch_size=2,
        breaker=BreakerConfig(failure_threshold=3, cool_down_seconds=30),
    )

    assert w.process(DEST).breaker == "closed"  # 2 failures in a row
    assert w.process(DEST).breaker == "open"  # 4 >= 3
    assert len(receiver.requests) == 4
    clock.advance(20)
    paused = w.process(DEST)
    assert (paused.admission, paused.claimed) == ("wait", 0)
    assert len(receiver.requests) == 4  # nothing sent while open

    clock.advance(10)  # cool-down over: one probe
    probe = w.process(DEST)
    assert (probe.admission, probe.claimed, probe.breaker) == ("probe", 1, "open")
    assert len(receiver.requests) == 5
    state = breaker_state(session_factory)
    assert state.open_until == clock.now + timedelta(seconds=60)

    clock.advance(59)  # the failed probe doubled the pause
    assert w.process(DEST).admission == "wait"
    receiver.rule = None  # the destination is back
    clock.advance(1)
    probe = w.process(DEST)
    assert (probe.admission, probe.claimed, probe.breaker) == ("probe", 1, "closed")
    w.drain()
    assert {rows(session_factory)[i].state for i in ids} == {"delivered"}
    state = breaker_state(session_factory)
    assert (state.breaker_state, state.consecutive_failures, state.opened_count) == ("closed", 0, 0)
    # the rows that waited behind the open breaker used no tries
    assert max(rows(session_factory)[i].attempts for i in ids) <= 3


def test_a_probe_with_nothing_due_checks_the_destination(
    session_factory: sessionmaker[Session], receiver: Receiver
) -> None:
    [oid] = queue(session_factory, [observation("o1", "p1", "v1")])
    receiver.rule = lambda t, i, body, n: (503, {"Retry-After": "3600"}, None)
    clock = Clock()
    w = worker(
        session_factory,
        receiver.base_url,
        clock=clock,
        breaker=BreakerConfig(failure_threshold=1, cool_down_seconds=30),
    )
    assert w.process(DEST).breaker == "open"
    clock.advance(30)
    probe = w.process(DEST)  # the row waits an hour: GET metadata is the probe
    assert (probe.admission, probe.claimed, probe.breaker) == ("probe", 0, "closed")
    assert rows(session_factory)[oid].attempts == 1


def test_two_workers_on_postgresql_share_one_queue_without_sending_twice(
    engine: Engine, database_url: str, receiver: Receiver
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("several workers need PostgreSQL (SQLite runs one)")
    patients, per_patient = 100, 3
    setup = store.session_factory(engine)
    queue(
        setup,
        [
            observation(f"o{p}-{k}", f"p{p}", "v1")
            for k in range(per_patient)
            for p in range(patients)
        ],
    )
    receiver.before = lambda t, i: time.sleep(0.001)  # a little server time: overlap
    engines = [make_engine(database_url) for _ in range(2)]
    workers = [
        worker(
            store.session_factory(e),
            receiver.base_url,
            worker_id=name,
            batch_size=10,
            poll_seconds=0.02,
        )
        for e, name in zip(engines, ("wA", "wB"), strict=True)
    ]
    stop = threading.Event()
    threads = [threading.Thread(target=w.run, args=(stop,)) for w in workers]
    for thread in threads:
        thread.start()
    total = patients * per_patient
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with setup() as session:
                done = session.scalar(
                    select(func.count()).select_from(Outbox).where(Outbox.state == "delivered")
                )
            if done == total:
                break
            time.sleep(0.05)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        for e in engines:
            e.dispose()

    sent = Counter(r.ref for r in receiver.requests)
    assert len(sent) == total and set(sent.values()) == {1}  # none lost, none sent twice
    order = [r.ref for r in receiver.requests]
    for p in range(patients):  # each patient's rows arrived in queue order
        mine = [ref for ref in order if ref.startswith(f"Observation/o{p}-")]
        assert mine == [f"Observation/o{p}-{k}" for k in range(per_patient)]
    with setup() as session:
        by_worker = dict(
            session.execute(
                select(DeliveryAttempt.worker, func.count()).group_by(DeliveryAttempt.worker)
            ).all()
        )
    assert set(by_worker) == {"wA", "wB"} and sum(by_worker.values()) == total
    print(
        f"\ntwo workers: {total} rows, {len(receiver.requests)} PUTs received, "
        f"{len(sent)} distinct, 0 twice; wA {by_worker['wA']}, wB {by_worker['wB']}"
    )


def _adapter_command() -> list[str]:
    script = Path(sys.executable).parent / "adapter"
    if script.exists():
        return [str(script)]
    found = shutil.which("adapter")
    return [found] if found else [sys.executable, "-c", "from adapter.cli import main; main()"]


def _count_states(factory: sessionmaker[Session]) -> Counter[str]:
    with factory() as session:
        return Counter(
            dict(session.execute(select(Outbox.state, func.count()).group_by(Outbox.state)).all())
        )


def test_a_worker_killed_mid_batch_loses_nothing_and_duplicates_nothing(
    database_url: str, session_factory: sessionmaker[Session], receiver: Receiver, tmp_path: Path
) -> None:
    patients, batch, kill_at = 60, 10, 25
    ids = queue(
        session_factory,
        [
            observation(f"o{p}-{k}", f"p{p}", f"v1-{p}-{k}")
            for k in range(2)
            for p in range(patients)
        ],
    )
    reached, release = threading.Event(), threading.Event()
    arrived = Counter[str]()

    def hold(resource_type: str, resource_id: str) -> None:
        arrived["n"] += 1
        if arrived["n"] == kill_at:  # the worker waits for this answer: kill it now
            reached.set()
            release.wait(30)

    receiver.before = hold
    config = write_consortium(tmp_path / "consortium.yaml", receiver.base_url)
    env = {
        **os.environ,
        "ADAPTER_DATABASE_URL": database_url,
        "ADAPTER_CONFIG": str(config),
        "ADAPTER_LOG_LEVEL": "WARNING",
    }
    command = [
        *_adapter_command(),
        "worker",
        "--batch",
        str(batch),
        "--lease-seconds",
        "3",
        "--poll-seconds",
        "0.05",
    ]
    logs = tmp_path / "worker.log"
    with logs.open("w") as out:
        first = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            assert reached.wait(60), logs.read_text()
            os.kill(first.pid, signal.SIGKILL)
            first.wait(10)
        finally:
            if first.poll() is None:
                first.kill()
            release.set()
        after_kill = _count_states(session_factory)
        # two batches were recorded; the third was in flight: its rows wait for their lease
        assert after_kill == {
            "delivered": 2 * batch,
            "in-flight": batch,
            "pending": len(ids) - 3 * batch,
        }, logs.read_text()

        second = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while _count_states(session_factory)["delivered"] < len(ids):
                assert time.monotonic() < deadline, logs.read_text()
                assert second.poll() is None, logs.read_text()
                time.sleep(0.05)
            second.send_signal(signal.SIGTERM)  # a graceful stop
            assert second.wait(30) == 0, logs.read_text()
        finally:
            if second.poll() is None:
                second.kill()

    expected = {f"Observation/o{p}-{k}": f"v1-{p}-{k}" for k in range(2) for p in range(patients)}
    received = Counter((r.ref, r.mark) for r in receiver.requests if 200 <= r.status < 300)
    lost = set(expected) - {ref for ref, _ in received}
    resent = {key: n for key, n in received.items() if n > 1}
    stored_marks = {ref: body["valueString"] for ref, body in receiver.stored.items()}
    assert not lost and stored_marks == expected  # every resource there, each once, current
    # only the batch in flight at the kill went again (PUT: an update, not a second resource)
    assert 1 <= len(resent) <= batch and set(resent.values()) == {2}
    assert _count_states(session_factory) == {"delivered": len(ids)}
    print(
        f"\nSIGKILL mid-batch: {len(ids)} rows, {sum(received.values())} PUTs received, "
        f"{len(stored_marks)} resources stored, 0 lost, {len(resent)} resent from the "
        f"killed batch, 0 duplicate resources"
    )


def test_sqlite_takes_one_worker(engine: Engine, session_factory: sessionmaker[Session]) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL takes several workers")
    first = start_exclusive(engine, session_factory)
    try:
        with pytest.raises(ConfigError, match="another delivery worker already runs"):
            start_exclusive(engine, session_factory)
    finally:
        first.release()
    again = SingleWorkerLock(engine)
    assert again.acquire()
    again.release()

"""A real ``adapter sync`` subprocess killed with SIGKILL at 10 random moments, then run to
the end: the same stored state and the same report as an uninterrupted run of the same
night in another database, and nothing delivered twice.

The kills hit the sync process only; delivery is the outbox worker's (``adapter worker
--once`` afterwards), whose own crash safety the delivery tests cover.
"""

from __future__ import annotations

import random
import signal
import time
from collections import Counter
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from adapter.store import make_engine, migrate, session_factory
from adapter.store.models import InboundMessage, Resource, ResourceVersion, SyncItem
from adapter.store.outbox import list_deliveries
from tests.integration.delivery_receiver import running_receiver
from tests.sync.support import (
    FACILITY,
    SOURCE_SYSTEM,
    consortium_file,
    environment,
    lab_report,
    report_key,
    run_cli,
    stable,
    start_sync,
    sync_json,
)

DAY = date(2026, 11, 20)
DOCUMENTS = 400  # enough that ten kills at 1-8 new items mostly land before the end, even
# when a kill lands several checkpoints late (a fast sync between two polls; 160 were too
# few once bulk ingest got faster: at a load average of 10 a late poll let one run reach
# the end, and only 1 kill of 10 landed mid-run)
KILLS = 10


def _state(url: str) -> dict[str, object]:
    engine = make_engine(url)
    try:
        with session_factory(engine)() as session:
            return _figures(session)
    finally:
        engine.dispose()


def _figures(session: Session) -> dict[str, object]:
    return {
        "messages": session.scalar(select(func.count()).select_from(InboundMessage)),
        "resources": session.scalar(select(func.count()).select_from(Resource)),
        "versions": session.scalar(select(func.count()).select_from(ResourceVersion)),
        "outbox": list_deliveries(session, limit=1)[0],
        "items": sorted(session.scalars(select(SyncItem.item_key)).all()),
        "hashes": sorted(session.scalars(select(InboundMessage.sha256)).all()),
    }


def _items(engine: Engine) -> int:
    # one engine for the whole test: a poll must be cheap, or the sync runs on past the
    # moment the kill was meant for (under load the kills then land after the end)
    with session_factory(engine)() as session:
        return int(session.scalar(select(func.count()).select_from(SyncItem)) or 0)


@pytest.mark.slow
def test_ten_sigkills_give_the_same_state_report_and_no_duplicate_delivery(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed = random.randrange(1_000_000)
    rng = random.Random(seed)
    root = tmp_path / "exports"
    folder = root / "20261120"
    folder.mkdir(parents=True)
    for number in range(1, DOCUMENTS + 1):
        (folder / f"{report_key(number)}.hl7").write_bytes(lab_report(number))
    source = {
        "id": "county-lab-night",
        "facility": FACILITY,
        "source": SOURCE_SYSTEM,
        "document_kind": "lab-report",
        "files": {"path": str(root / "{date:%Y%m%d}"), "pattern": "*.hl7"},
    }
    with running_receiver() as receiver:
        config = consortium_file(tmp_path, [source], receiver=receiver.base_url, checkpoint_every=4)
        env = environment(database_url, config)

        mid_run = 0
        counter = make_engine(database_url)
        for _ in range(KILLS):
            before = _items(counter)
            process = start_sync(env, "--day", DAY.isoformat())
            deadline = time.monotonic() + 60
            target = before + rng.randint(1, 8)
            early = time.monotonic() + rng.uniform(0.2, 2.0) if rng.random() < 0.2 else None
            # kill at a random moment: sometimes while starting, mostly mid-run
            while time.monotonic() < deadline and process.poll() is None:
                if early is not None and time.monotonic() >= early:
                    break
                if _items(counter) >= target:
                    break
                time.sleep(rng.uniform(0.01, 0.05))
            if process.poll() is not None:  # it finished (or failed) before the kill
                assert process.returncode in (0, 1), process.stderr.read().decode()[-2000:]
            process.send_signal(signal.SIGKILL)
            process.wait()
            after = _items(counter)
            if 0 < after < DOCUMENTS and after > before:
                mid_run += 1
        counter.dispose()
        assert mid_run >= 3, f"too few kills landed mid-run ({mid_run}); seed {seed}"

        code, report = sync_json(env, "--day", DAY.isoformat(), monkeypatch=monkeypatch)
        assert code == 0, report
        assert run_cli(env, "worker", "--once", monkeypatch=monkeypatch)[0] == 0
        killed_state = _state(database_url)

        # the same night, uninterrupted, in a database of its own
        other = f"sqlite:///{tmp_path / 'uninterrupted.db'}"
        engine = make_engine(other)
        migrate(engine)
        engine.dispose()
        receiver_refs_before = len(receiver.requests)
        other_env = environment(other, config)
        code, clean_report = sync_json(other_env, "--day", DAY.isoformat(), monkeypatch=monkeypatch)
        assert code == 0

    assert stable(report) == stable(clean_report), f"seed {seed}"
    assert killed_state == _state(other)
    assert receiver_refs_before > 0
    sent = Counter(
        (r.ref, r.body.get("meta", {}).get("versionId"))
        for r in receiver.requests[:receiver_refs_before]
    )
    assert max(sent.values()) == 1, f"delivered twice: {sent.most_common(3)}; seed {seed}"
    assert len(report["sources"][0]["gaps"]["missing"]) == 0
    assert report["sources"][0]["received"]["total"] == DOCUMENTS

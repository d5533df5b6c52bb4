"""Reports kept in the database: adapter sync history, the volume-drop alert against the
recent median, /metrics; and the schedule's lease (one process among several runs a day)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from adapter.consortium import load_consortium
from adapter.pipeline import Pipeline
from adapter.sync.lease import release, take
from adapter.sync.run import SyncRunner
from tests.sync.support import (
    FACILITY,
    SOURCE_SYSTEM,
    consortium_file,
    environment,
    lab_report,
    mappings_dir,
    report_key,
    run_cli,
)

FIRST = date(2026, 11, 16)


def test_history_lists_runs_and_a_volume_drop_raises_the_alert_also_in_metrics(
    tmp_path: Path,
    database_url: str,
    session_factory: sessionmaker[Session],
    client: TestClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = tmp_path / "exports"
    number = 0
    for offset, count in enumerate((6, 5, 6, 2)):  # the last night brings far fewer reports
        folder = root / (FIRST + timedelta(days=offset)).strftime("%Y%m%d")
        folder.mkdir(parents=True)
        for _ in range(count):
            number += 1
            (folder / f"{report_key(number)}.hl7").write_bytes(lab_report(number))
    source = {
        "id": "county-lab-night",
        "facility": FACILITY,
        "source": SOURCE_SYSTEM,
        "document_kind": "lab-report",
        "files": {"path": str(root / "{date:%Y%m%d}")},
    }
    config = consortium_file(tmp_path, [source], volume_history_runs=3)
    consortium = load_consortium(config)
    pipeline = Pipeline(
        consortium,
        session_factory,
        mappings_dir=mappings_dir(tmp_path),
        max_bytes=5_000_000,
        default_timezone="Asia/Shanghai",
    )
    runner = SyncRunner(consortium, pipeline, session_factory)
    outcomes = [runner.run(FIRST + timedelta(days=d)) for d in range(4)]
    assert [o.exit_code for o in outcomes] == [0, 0, 0, 0]
    assert [o.report["sources"][0]["volume_alert"] for o in outcomes[:3]] == [None] * 3
    assert outcomes[3].report["sources"][0]["volume_alert"] == {
        "count": 2,
        "median": 6,
        "days": 3,
        "percent": 30.0,
    }

    env = environment(database_url, config)
    code, text = run_cli(env, "sync", "history", "--lang", "en", monkeypatch=monkeypatch)
    assert code == 0
    lines = text.strip().splitlines()
    assert lines[0].split() == ["run", "day", "state", "exit", "received", "gaps", "alerts"]
    days = [line.split()[1] for line in lines[1:]]
    assert days == ["2026-11-19", "2026-11-18", "2026-11-17", "2026-11-16"]

    metrics = client.get("/metrics").text
    assert 'adapter_sync_volume_alert{sync_source="county-lab-night"} 1' in metrics
    assert 'adapter_sync_source_count{sync_source="county-lab-night"} 2' in metrics
    assert 'adapter_sync_last_exit_code{sync_source="county-lab-night"} 0' in metrics


def test_the_schedule_lease_lets_one_process_run_each_day(
    session_factory: sessionmaker[Session],
) -> None:
    now = datetime(2026, 11, 21, 2, 30, tzinfo=UTC)
    with session_factory.begin() as session:
        assert take(session, "sync", "host-a:1", "2026-11-20", 3600, now)
    with session_factory.begin() as session:
        assert not take(session, "sync", "host-b:2", "2026-11-20", 3600, now)
    with session_factory.begin() as session:
        release(session, "sync", "host-a:1", "2026-11-20")
    with session_factory.begin() as session:  # done for that day: nobody runs it again
        assert not take(session, "sync", "host-b:2", "2026-11-20", 3600, now)
    with session_factory.begin() as session:  # the next night
        assert take(session, "sync", "host-b:2", "2026-11-21", 3600, now + timedelta(days=1))
    later = now + timedelta(days=1, hours=2)  # host-b died holding it: the lease runs out
    with session_factory.begin() as session:
        assert take(session, "sync", "host-a:1", "2026-11-21", 3600, later)


def test_a_run_that_keeps_dying_is_given_up_visibly(
    tmp_path: Path, session_factory: sessionmaker[Session]
) -> None:
    from adapter.errors import AdapterError
    from adapter.store.models import SyncRun
    from adapter.sync import ledger

    (tmp_path / "exports" / "20261120").mkdir(parents=True)
    source = {
        "id": "county-lab-night",
        "facility": FACILITY,
        "source": SOURCE_SYSTEM,
        "document_kind": "lab-report",
        "files": {"path": str(tmp_path / "exports" / "{date:%Y%m%d}")},
    }
    consortium = load_consortium(consortium_file(tmp_path, [source], max_attempts=2))
    with session_factory.begin() as session:
        run = ledger.new_run(
            session, "2026-11-20", ["county-lab-night"], False, {}, datetime.now(UTC)
        )
        run.attempts = 12  # started 12 times, never finished (2 + 10 per source allowed)
        run_id = run.id
    runner = SyncRunner(consortium, None, session_factory)
    with pytest.raises(AdapterError, match="started 12 times without finishing; given up"):
        runner.run(date(2026, 11, 20))
    with session_factory() as session:
        assert session.get(SyncRun, run_id).state == "failed"
    # the next start is a new run, not the given-up one
    assert runner.run(date(2026, 11, 20)).run_id != run_id

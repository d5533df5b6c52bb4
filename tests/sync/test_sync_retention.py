"""A night delivered, then pruned by the outbox retention (``adapter prune``, decision
0064): the night's reconciliation reports the same acknowledgements and no gap; a pruned
delivery cannot be replayed by id and says why."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from adapter.store.models import DeliveryAttempt, Outbox
from tests.integration.delivery_receiver import running_receiver
from tests.sync.support import (
    FACILITY,
    SOURCE_SYSTEM,
    consortium_file,
    environment,
    lab_report,
    report_key,
    run_cli,
    sync_json,
)

DAY = date(2026, 11, 20)


def _night(folder: Path, numbers: range) -> None:
    folder.mkdir(parents=True)
    for number in numbers:
        (folder / f"{report_key(number)}.hl7").write_bytes(lab_report(number))


def _counts(factory: sessionmaker[Session]) -> tuple[int, int]:
    with factory() as session:
        rows = session.scalar(select(func.count()).select_from(Outbox)) or 0
        attempts = session.scalar(select(func.count()).select_from(DeliveryAttempt)) or 0
    return int(rows), int(attempts)


def test_a_pruned_night_reconciles_as_before_without_new_gaps(
    tmp_path: Path,
    database_url: str,
    session_factory: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = tmp_path / "exports"
    _night(root / "20261120", range(1, 6))
    source = {
        "id": "county-lab-night",
        "facility": FACILITY,
        "source": SOURCE_SYSTEM,
        "document_kind": "lab-report",
        "files": {"path": str(root / "{date:%Y%m%d}"), "pattern": "*.hl7"},
    }
    with running_receiver() as receiver:
        env = environment(
            database_url, consortium_file(tmp_path, [source], receiver=receiver.base_url)
        )
        assert sync_json(env, "--day", DAY.isoformat(), monkeypatch=monkeypatch)[0] == 0
        assert run_cli(env, "worker", "--once", monkeypatch=monkeypatch)[0] == 0
        code, before = sync_json(env, "--day", DAY.isoformat(), monkeypatch=monkeypatch)
        assert code == 0, before
        [part] = before["sources"]
        assert part["destinations"] == {
            "county-hospital-fhir": {"delivered": 5, "pending": 0, "dead": 0}
        }
        rows, attempts = _counts(session_factory)
        assert rows > 5 and attempts == rows
        sent = len(receiver.requests)

    # the deliveries are 40 days old now (the rows' own times moved back)
    with session_factory.begin() as session:
        for row in session.scalars(select(Outbox)):
            assert row.delivered_at is not None
            row.delivered_at -= timedelta(days=40)
            row.next_attempt_at -= timedelta(days=40)
        first_id = session.scalar(select(func.min(Outbox.id)))

    code, text = run_cli(env, "prune", "--dry-run", monkeypatch=monkeypatch)
    assert code == 0 and f"would delete {rows} delivered rows and {attempts} attempts" in text
    assert _counts(session_factory) == (rows, attempts)  # a dry run deletes nothing
    code, text = run_cli(env, "prune", "--days", "60", monkeypatch=monkeypatch)
    assert code == 0 and "deleted 0 delivered rows" in text
    code, text = run_cli(env, "prune", "--batch", "4", monkeypatch=monkeypatch)
    assert code == 0, text
    assert f"deleted {rows} delivered rows and {attempts} attempts" in text
    assert _counts(session_factory) == (0, 0)

    code, after = sync_json(env, "--day", DAY.isoformat(), monkeypatch=monkeypatch)
    assert code == 0, after
    [pruned] = after["sources"]
    assert pruned["destinations"] == part["destinations"]
    assert pruned["gaps"] == part["gaps"] and not any(pruned["gaps"].values())
    assert len(receiver.requests) == sent  # nothing was sent again

    code, text = run_cli(env, "replay", str(first_id), monkeypatch=monkeypatch)
    assert code == 1 and "ADAPTER_OUTBOX_RETENTION_DAYS" in text

    monkeypatch.setenv("ADAPTER_OUTBOX_RETENTION_DAYS", "keep")
    code, text = run_cli(env, "prune", monkeypatch=monkeypatch)
    assert code == 0 and "retention is off" in text

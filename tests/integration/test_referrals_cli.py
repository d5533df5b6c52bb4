"""``adapter referrals ...`` run in-process with CliRunner against the test database, the
up-slip of 石桥 to the county hospital ingested through the real pipeline first."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from adapter.cli import app
from adapter.pipeline import Receipt
from adapter.settings import get_settings
from adapter.store import read_resource
from tests.integration.referral_support import (
    RECEIVER,
    SENDER,
    UP_SLIP,
    consortium_by_care,
    outbox_of,
    pipeline_for,
)


@pytest.fixture
def task(
    tmp_path: Path,
    database_url: str,
    session_factory: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[str]:
    config = consortium_by_care(tmp_path)
    result = pipeline_for(config, session_factory).ingest(
        UP_SLIP.read_bytes(), Receipt("shiqiao-his", "cli", received_at=datetime.now(UTC))
    )
    assert result.status.startswith("processed"), result.issues
    monkeypatch.setenv("ADAPTER_DATABASE_URL", database_url)
    monkeypatch.setenv("ADAPTER_CONFIG", str(config))
    get_settings.cache_clear()
    yield next(r for r in result.resources if r.startswith("Task/"))
    get_settings.cache_clear()


def run(*args: Any) -> Result:
    result = CliRunner().invoke(app, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def test_accept_arrive_close_and_show(task: str, session_factory: sessionmaker[Session]) -> None:
    accepted = run("referrals", "accept", task, "--facility", RECEIVER)
    assert accepted.exit_code == 0, accepted.output
    assert "version 2, accepted / 已同意; 2 deliveries queued" in accepted.output
    again = run("referrals", "accept", task, "--facility", RECEIVER)
    assert again.exit_code == 0 and "unchanged (already so): version 2" in again.output
    arrived = run("referrals", "arrive", task, "--facility", RECEIVER, "--admitted")
    assert "in-progress / 已入院" in arrived.output, arrived.output
    closed = run("referrals", "close", task, "--facility", RECEIVER)
    assert closed.exit_code == 0, closed.output
    assert "completed / 无反馈关闭" in closed.output
    assert "note: closed without feedback" in closed.output
    assert "ServiceRequest is now completed" in closed.output
    shown = run("referrals", "show", task)
    assert shown.exit_code == 0, shown.output
    assert "(completed)" in shown.output.splitlines()[0]
    assert f"* {task}  v4  completed / 无反馈关闭" in shown.output
    assert "张秀英" not in shown.output and "430999196704151244" not in shown.output
    versions = {v for _, v in outbox_of(session_factory, task)}
    assert versions >= {2, 3, 4}


def test_refusal_prints_the_rule_and_changes_nothing(
    task: str, session_factory: sessionmaker[Session]
) -> None:
    refused = run("referrals", "accept", task, "--facility", SENDER)
    assert refused.exit_code == 1
    assert "refused by rule accepted-by-receiver" in refused.output
    reject = run("referrals", "reject", task, "--facility", RECEIVER, "--reason", "tired")
    assert reject.exit_code == 1 and "unknown-reason" in reject.output
    with session_factory() as session:
        body = read_resource(session, "Task", task.split("/", 1)[1])
    assert body is not None and body["meta"]["versionId"] == "1"
    rejected = run("referrals", "reject", task, "--facility", RECEIVER, "--reason", "bed-full")
    assert rejected.exit_code == 0 and "rejected / 已拒绝" in rejected.output


def test_ledger_analysis_worklist_follow_up_and_scheduler(
    task: str, tmp_path: Path, session_factory: sessionmaker[Session]
) -> None:
    import csv
    import json

    import openpyxl

    target = tmp_path / "ledger.xlsx"
    made = run(
        "referrals", "ledger", "--from", "2026-11-01", "--to", "2026-11-30",
        "--format", "xlsx", "-o", target,
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    assert "1 referrals written" in made.output
    sheet = openpyxl.load_workbook(target).active
    assert sheet is not None and sheet["A1"].value == "转诊单号"
    week = run("referrals", "ledger", "--week", "2026-11-27", "-o", tmp_path / "week.csv")
    assert week.exit_code == 0, week.output
    with (tmp_path / "week.csv").open(encoding="utf-8-sig") as stream:
        assert len(list(csv.reader(stream))) == 2
    assert run("referrals", "ledger", "--week", "2026-11-26").exit_code != 0  # not a Friday
    late = run("referrals", "ledger", "--late", "-o", tmp_path / "late.csv")
    assert late.exit_code == 0 and "0 referrals written" in late.output

    analysed = run("referrals", "analysis", "--from", "2026-11-01", "--to", "2026-11-30")
    assert analysed.exit_code == 0, analysed.output
    assert json.loads(analysed.stdout[analysed.stdout.index("{") :])["counts"]["up"] == 1

    once = run("referrals", "scheduler", "--once")  # the slip of 11-27: late to accept, expired
    assert once.exit_code == 0, once.output
    assert "2 deadlines listed, 1 expired" in once.output
    listed = run("referrals", "worklist", "--facility", RECEIVER)
    assert "过期" in listed.output and "1 overdue" in listed.output  # the lost referral
    top = run("scheduler", "--once")  # the same as ``adapter referrals scheduler``
    assert "0 deadlines listed" in top.output

    refused = run("referrals", "follow-up", task, "--facility", RECEIVER)
    assert refused.exit_code == 1  # an up-referral's follow-up is the sender's
    noted = run("referrals", "follow-up", task, "--facility", SENDER, "--record", "Encounter/x")
    assert noted.exit_code == 0 and "follow-up 1 recorded" in noted.output


def test_rebuild_ledger(task: str, session_factory: sessionmaker[Session]) -> None:
    """A database from before migration 0012: the ledger rebuilt from the stored Tasks."""
    from sqlalchemy import delete

    from adapter.store.models import ReferralLedger

    with session_factory.begin() as session:
        session.execute(delete(ReferralLedger))
    rebuilt = run("referrals", "rebuild-ledger")
    assert rebuilt.exit_code == 0, rebuilt.output
    assert "1 referral Tasks in the ledger" in rebuilt.output
    with session_factory() as session:
        row = session.get(ReferralLedger, task.split("/", 1)[1])
        assert row is not None and row.slip_number == "SQ-ZZ-2026-0201"


def _many_rows(session_factory: sessionmaker[Session], n: int) -> None:
    """``n`` ledger rows of November 2026 (the analysis and the export read only the
    ledger table; the pipeline that fills it is tested elsewhere)."""
    from datetime import timedelta

    from adapter.store.models import ReferralLedger

    start = datetime(2026, 11, 2, tzinfo=UTC)
    with session_factory.begin() as session:
        session.add_all(
            ReferralLedger(
                task_id=f"bulk-{i}",
                request_id=f"bulk-sr-{i}",
                slip_number=f"BULK-{i:05d}",
                direction="up" if i % 4 else "down",
                patient_masked="王*",
                sender_facility=SENDER,
                receiver_facility=RECEIVER,
                status="requested",
                business_status="requested",
                created_at=start + timedelta(minutes=10 * i),
                updated_at=start,
                follow_ups=0,
                missing=[],
            )
            for i in range(n)
        )


def test_long_runs_print_progress_to_stderr(
    task: str, tmp_path: Path, session_factory: sessionmaker[Session]
) -> None:
    """2,500 more rows: the export tells every 1000 rows, the analysis the rows read and
    each of its two periods; stdout keeps only the result."""
    import json

    _many_rows(session_factory, 2500)
    made = run(
        "referrals", "ledger", "--from", "2026-11-01", "--to", "2026-11-30",
        "--format", "csv", "-o", tmp_path / "big.csv",
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    assert made.stderr.splitlines() == ["  1000 rows ...", "  2000 rows ..."]
    assert made.stdout.strip() == f"2501 referrals written to {tmp_path / 'big.csv'}"

    analysed = run("referrals", "analysis", "--from", "2026-11-01", "--to", "2026-11-30")
    assert analysed.exit_code == 0, analysed.output
    assert analysed.stderr.splitlines() == [
        "analysing 2026-11-01 .. 2026-11-30 ...",
        "  1000 rows read ...",
        "  2000 rows read ...",
        "  period 1/2 read: 2501 rows",
        "  period 2/2 read (the period before, for the trend): 0 rows",
    ]
    result = json.loads(analysed.stdout)
    assert result["tasks"] == 2501 and result["counts"]["down"] == 625

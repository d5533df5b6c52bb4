"""Deadlines, the overdue worklist and expiry (issue 12 §2) with a simulated clock: the
real pipeline stores the slips, the real store moves the Tasks, the scheduler runs every
30 simulated minutes over 40 days. **0 orphan referrals**: at every tick, every deadline
a referral owes is either still ahead or on the worklist, listed within deadline + 1 h.
Seven referrals cover every deadline: untouched (accept, then expiry), urgent (30 min),
accepted and never come (arrive), come without feedback (feedback), discharged without
the sender's follow-up (follow-up), answered in time (nothing), and a down-referral
(its 2 / 7 / 30-day follow-ups). SQLite; PostgreSQL with ``-m db``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from adapter.api.app import create_app
from adapter.pipeline import Receipt
from adapter.referral.apply import apply_change
from adapter.referral.deadlines import owed
from adapter.referral.machine import Change
from adapter.referral.scheduler import run_once
from adapter.settings import Settings
from adapter.store.models import Outbox, ReferralLedger, ReferralOverdue
from tests.integration.referral_support import (
    RECEIVER,
    ROOT,
    SENDER,
    UP_SLIP,
    consortium_by_care,
)

SLIP_AT = datetime(2026, 11, 27, 1, 10, tzinfo=UTC)  # 09:10 in Shanghai, the slip's date


def slip(number: str, *, urgent: bool = False, id_card: str | None = None) -> bytes:
    text = UP_SLIP.read_bytes().decode("gbk").replace("SQ-ZZ-2026-0201", number)
    if urgent:
        text = text.replace("<紧急程度>普通</紧急程度>", "<紧急程度>紧急</紧急程度>")
    if id_card:
        text = text.replace("430999196704151244", id_card)
    return text.encode("gbk")


@pytest.fixture
def app(tmp_path: Path, database_url: str) -> Iterator[Any]:
    app = create_app(Settings(database_url=database_url, config=consortium_by_care(tmp_path)))
    with TestClient(app):
        yield app
    app.state.engine.dispose()


def ingest(app: Any, raw: bytes, at: datetime) -> str:
    result = app.state.pipeline.ingest(raw, Receipt("shiqiao-his", "cli", received_at=at))
    assert result.status.startswith("processed"), result.issues
    return next(r for r in result.resources if r.startswith("Task/")).split("/", 1)[1]


def ingest_down(app: Any, at: datetime) -> str:
    raw = (ROOT / "fixtures/xml/referral/county-emr/down-slip.xml").read_bytes()
    result = app.state.pipeline.ingest(raw, Receipt("county-emr", "cli", received_at=at))
    assert result.status.startswith("processed"), result.issues
    return next(r for r in result.resources if r.startswith("Task/")).split("/", 1)[1]


def move(app: Any, task: str, facility: str, change: Change, at: datetime) -> None:
    with app.state.session_factory.begin() as session:
        apply_change(session, app.state.consortium, task, change, facility, now=at)


def orphans(app: Any, now: datetime) -> list[str]:
    """Deadlines owed, passed by more than an hour, not on the worklist in time."""
    deadlines = app.state.consortium.referrals.deadlines
    found = []
    with app.state.session_factory() as session:
        listed = {
            (o.task_id, o.kind): o.noticed_at for o in session.scalars(select(ReferralOverdue))
        }
        for row in session.scalars(select(ReferralLedger)):
            for due in owed(row, deadlines):
                noticed = listed.get((row.task_id, due.kind))
                late = due.at + timedelta(hours=1)
                if now > late and (noticed is None or noticed > late):
                    found.append(f"{row.slip_number} {due.kind} due {due.at} noticed {noticed}")
    return found


def test_zero_orphan_referrals_with_a_simulated_clock(app: Any) -> None:
    untouched = ingest(app, slip("DL-1"), SLIP_AT)
    urgent = ingest(app, slip("DL-2", urgent=True, id_card="430999198001011235"), SLIP_AT)
    accepted = ingest(app, slip("DL-3", id_card="430999198001021231"), SLIP_AT)
    arrived = ingest(app, slip("DL-4", id_card="430999198001031237"), SLIP_AT)
    answered = ingest(app, slip("DL-5", id_card="430999198001041233"), SLIP_AT)
    discharged = ingest(app, slip("DL-6", id_card="430999198001051239"), SLIP_AT)
    down = ingest_down(app, SLIP_AT)  # 县医院 -> 石桥, dated 12-03 10:00

    plan = {  # simulated hour -> the changes made then
        2: [(accepted, Change("accepted"))],
        3: [(arrived, Change("accepted"))],
        5: [(answered, Change("received"))],
        20: [(arrived, Change("in-progress", "arrived"))],
        10: [(answered, Change("rejected", "rejected", reason="bed-full"))],
        4: [(discharged, Change("accepted"))],
        8: [(discharged, Change("in-progress", "arrived"))],
        30: [(discharged, Change("in-progress", "discharged"))],
        160: [(down, Change("accepted"))],
        170: [(down, Change("in-progress", "arrived"))],
        200: [(down, Change("in-progress", "followed-up"))],  # the first, late (due at +2 d)
    }
    party = {down: SENDER}  # the down-referral's receiver is 石桥
    now = SLIP_AT
    for tick in range(40 * 48):
        now = SLIP_AT + timedelta(minutes=30 * tick)
        for task, change in plan.pop(tick // 2, []) if tick % 2 == 0 else []:
            move(app, task, party.get(task, RECEIVER), change, now)
        run_once(app.state.session_factory, app.state.consortium, now=now)
        assert orphans(app, now) == [], now

    with app.state.session_factory() as session:
        rows = {r.slip_number: r for r in session.scalars(select(ReferralLedger))}
        listed = {(o.task_id, o.kind) for o in session.scalars(select(ReferralOverdue))}
        notices = session.scalars(
            select(Outbox.destination)
            .select_from(Outbox)  # both read through other tables (decisions 0079, 0084)
            .where(Outbox.resource_type == "Communication")
        ).all()
    # the untouched one: late to accept (24 h), then expired after 3 days
    assert (untouched, "accept") in listed and (untouched, "expire") in listed
    assert (rows["DL-1"].status, rows["DL-1"].business_status) == ("cancelled", "expired")
    # the urgent one: 30 minutes to accept
    assert rows["DL-2"].emergency and (urgent, "accept") in listed
    assert (accepted, "arrive") in listed  # accepted, never came
    assert (arrived, "feedback") in listed  # came, no feedback in 7 days
    assert not any(task == answered for task, _ in listed)  # answered in time: nothing
    assert rows["DL-5"].status == "rejected"
    assert (discharged, "follow-up") in listed  # the sender never followed up
    assert {(down, "follow-up"), (down, "follow-up-2"), (down, "follow-up-3")} <= listed
    # both parties told: the sender's and the receiver's destinations
    assert {"shiqiao-fhir", "county-hospital-fhir"} <= set(notices)
    assert orphans(app, now) == []


def test_scheduler_runs_twice_lists_once(app: Any) -> None:
    task = ingest(app, slip("DL-9"), SLIP_AT)
    later = SLIP_AT + timedelta(days=2)
    first = run_once(app.state.session_factory, app.state.consortium, now=later)
    again = run_once(app.state.session_factory, app.state.consortium, now=later)
    assert first.listed == [(task, "accept")] and again.listed == []
    assert first.notices >= 2 and again.notices == 0
    # done late: the worklist row is resolved
    move(app, task, RECEIVER, Change("accepted"), later + timedelta(hours=1))
    with app.state.session_factory() as session:
        item = session.scalars(select(ReferralOverdue)).one()
    assert item.resolved_at is not None and item.facility_id == RECEIVER
    assert SENDER  # the sender is the other party of the notice


def test_schedulers_at_once_list_each_breach_once(app: Any) -> None:
    """Four schedulers at the same moment (threads, each its own connections): every
    breach listed and notified once, none lost (PostgreSQL: FOR UPDATE SKIP LOCKED)."""
    from concurrent.futures import ThreadPoolExecutor

    tasks = {
        ingest(app, slip(f"PAR-{n}", id_card=f"43099919800{n + 1:03d}0000"[:17] + "X"), SLIP_AT)
        for n in range(8)
    }
    later = SLIP_AT + timedelta(days=2)  # late to accept, not yet expired
    with ThreadPoolExecutor(4) as pool:
        reports = list(
            pool.map(
                lambda _: run_once(
                    app.state.session_factory, app.state.consortium, now=later, batch=3
                ),
                range(4),
            )
        )
    listed = [item for report in reports for item in report.listed]
    assert sorted(listed) == sorted((task, "accept") for task in tasks)
    with app.state.session_factory() as session:
        rows = session.scalars(select(ReferralOverdue)).all()
        notices = session.scalars(
            select(Outbox.resource_id)
            .select_from(Outbox)  # both read through other tables (decisions 0079, 0084)
            .where(Outbox.resource_type == "Communication")
        ).all()
    assert len(rows) == len(tasks)
    assert len(set(notices)) == len(tasks)  # one Communication per breach
    assert len(notices) == sum(r.notices for r in reports)

"""``adapter sync --jobs N`` (decision 0061): the sources of one run shared out among child
processes give the stored state and the report of a one-process run of the same night;
a share's process killed mid-run leaves a run the next start finishes the same way; a
killed parent leaves no child behind; a source down still gives exit 2 with its reason.

The night: three lab sources whose reports are about the same five hospital numbers of
one person (one national ID), so two children create, link and merge the same patients at
the same moment, and write outbox rows for the same destination. PostgreSQL (``-m db``):
SQLite refuses more than one job (a single writer), which the last test checks.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from adapter.store import make_engine, migrate, session_factory
from adapter.store.identity_tables import IdentityKey, IdentityRecord
from adapter.store.models import (
    CareRelationship,
    InboundMessage,
    Outbox,
    Resource,
    ResourceVersion,
    SyncItem,
)
from adapter.sync.shares import expected_costs, plan
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
PER_SOURCE = 60
SOURCES = ("lab-a", "lab-b", "lab-c")


def _report(number: int) -> bytes:
    """A lab report with its own specimen about one of five hospital numbers of the same
    person. (Not one specimen in every report: the versions of a resource that two sources
    both change follow the order the processes store them in, so its version count may
    differ from a one-process run's; decision 0061.)"""
    raw = lab_report(number).replace(b"0000356721", f"00003567{number % 5:02d}".encode())
    return raw.replace(b"S2611200015", f"S{number:09d}".encode())


def _night(tmp: Path, *, missing: str | None = None, **sync: Any) -> Path:
    sources = []
    for index, name in enumerate(SOURCES):
        root = tmp / "exports" / name
        if name != missing:
            folder = root / "20261120"
            folder.mkdir(parents=True)
            for number in range(index * PER_SOURCE + 1, (index + 1) * PER_SOURCE + 1):
                (folder / f"{report_key(number)}.hl7").write_bytes(_report(number))
        sources.append(
            {
                "id": name,
                "facility": FACILITY,
                "source": SOURCE_SYSTEM,
                "document_kind": "lab-report",
                "files": {"path": str(root / "{date:%Y%m%d}"), "pattern": "*.hl7"},
            }
        )
    # the destination is on (outbox rows are written) but never contacted: no worker runs
    return consortium_file(tmp, sources, receiver="http://127.0.0.1:9", checkpoint_every=4, **sync)


def _state(url: str) -> dict[str, Any]:
    engine = make_engine(url)
    try:
        with session_factory(engine)() as session:
            return _figures(session)
    finally:
        engine.dispose()


def _figures(session: Session) -> dict[str, Any]:
    def per(column: Any) -> dict[str, int]:
        # FROM the column's entity: Outbox.destination is read through outbox_destination
        entity = column.class_
        rows = session.execute(
            select(column, func.count()).select_from(entity).group_by(column)
        ).all()
        return {str(k): int(n) for k, n in rows}

    return {
        "messages": session.scalar(select(func.count()).select_from(InboundMessage)),
        "hashes": sorted(session.scalars(select(InboundMessage.sha256)).all()),
        "statuses": per(InboundMessage.status),
        "resources": per(Resource.resource_type),
        "versions": per(ResourceVersion.resource_type),
        "patients": session.scalar(select(func.count()).select_from(IdentityRecord)),
        "persons": session.scalar(select(func.count(func.distinct(IdentityRecord.person_id)))),
        "identity keys": session.scalar(select(func.count()).select_from(IdentityKey)),
        "care rows": session.scalar(select(func.count()).select_from(CareRelationship)),
        "outbox": per(Outbox.destination),
        "items": sorted(session.scalars(select(SyncItem.item_key)).all()),
    }


def _reference(tmp: Path, config: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[dict, dict]:
    """The same night with one process, in a SQLite database of its own."""
    url = f"sqlite:///{tmp / 'one-process.db'}"
    engine = make_engine(url)
    migrate(engine)
    engine.dispose()
    code, report = sync_json(
        environment(url, config), "--day", DAY.isoformat(), monkeypatch=monkeypatch
    )
    assert code == 0, report
    return report, _state(url)


def _postgres_only(url: str) -> None:
    if not url.startswith("postgresql"):
        pytest.skip("--jobs above 1 runs on PostgreSQL (SQLite: the refusal test below)")


def _children(parent: int) -> list[int]:
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            stat = (entry / "stat").read_text()
            ours = int(stat[stat.rindex(")") + 2 :].split()[1]) == parent
            if ours and b"--share" in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue
    return found


def _items(url: str) -> int:
    engine = make_engine(url)
    try:
        with session_factory(engine)() as session:
            return int(session.scalar(select(func.count()).select_from(SyncItem)) or 0)
    finally:
        engine.dispose()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/stat").read_text()
    return status[status.rindex(")") + 2] != "Z"  # a zombie has ended


@pytest.mark.parametrize("jobs", [2, 3])
def test_jobs_give_the_state_and_report_of_one_process(
    jobs: int, tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _postgres_only(database_url)
    config = _night(tmp_path)
    code, report = sync_json(
        environment(database_url, config),
        "--day",
        DAY.isoformat(),
        "--jobs",
        str(jobs),
        monkeypatch=monkeypatch,
    )
    assert code == 0, report
    state = _state(database_url)
    clean_report, clean_state = _reference(tmp_path, config, monkeypatch)
    assert stable(report) == stable(clean_report)
    assert state == clean_state
    assert state["messages"] == len(SOURCES) * PER_SOURCE
    assert state["persons"] == 1 and state["patients"] == 5  # one person, five numbers
    assert sum(state["outbox"].values()) > 0


def test_a_share_killed_mid_run_is_resumed_to_the_same_state(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _postgres_only(database_url)
    config = _night(tmp_path)
    env = environment(database_url, config)
    process = start_sync(env, "--day", DAY.isoformat(), "--jobs", "2")
    deadline = time.monotonic() + 120
    victim = None
    while time.monotonic() < deadline and process.poll() is None:
        if _items(database_url) >= 12:
            victim = next(iter(_children(process.pid)), None)
            if victim is not None:
                os.kill(victim, signal.SIGKILL)
                break
        time.sleep(0.05)
    assert victim is not None, "no share process was killed mid-run"
    out, err = process.communicate(timeout=120)
    assert process.returncode == 2, err.decode()[-2000:]
    interrupted = out.decode()
    assert "SIGKILL" in interrupted and "start the run again" in interrupted
    assert _items(database_url) < len(SOURCES) * PER_SOURCE  # the kill landed mid-run

    code, report = sync_json(env, "--day", DAY.isoformat(), "--jobs", "2", monkeypatch=monkeypatch)
    assert code == 0, report
    assert report["run"]["id"] in interrupted  # the same run, resumed
    state = _state(database_url)
    clean_report, clean_state = _reference(tmp_path, config, monkeypatch)
    assert stable(report) == stable(clean_report)
    assert state == clean_state  # no message, version or outbox row stored twice
    assert Counter(state["hashes"]).most_common(1)[0][1] == 1


def test_a_killed_parent_leaves_no_share_running(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _postgres_only(database_url)
    config = _night(tmp_path)
    env = environment(database_url, config)
    process = start_sync(env, "--day", DAY.isoformat(), "--jobs", "2")
    deadline = time.monotonic() + 120
    children: list[int] = []
    while time.monotonic() < deadline and process.poll() is None and len(children) < 2:
        children = _children(process.pid)
        time.sleep(0.05)
    assert len(children) == 2
    process.send_signal(signal.SIGKILL)
    process.wait()
    process.stdout.close()  # type: ignore[union-attr]
    process.stderr.close()  # type: ignore[union-attr]
    ends = time.monotonic() + 10
    while time.monotonic() < ends and any(_alive(pid) for pid in children):
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in children)
    code, report = sync_json(env, "--day", DAY.isoformat(), "--jobs", "2", monkeypatch=monkeypatch)
    assert code == 0, report
    assert report["totals"]["received"] == len(SOURCES) * PER_SOURCE


def test_a_source_down_gives_exit_2_and_the_others_are_done(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _postgres_only(database_url)
    config = _night(tmp_path, missing="lab-b")
    code, report = sync_json(
        environment(database_url, config),
        "--day",
        DAY.isoformat(),
        "--jobs",
        "2",
        monkeypatch=monkeypatch,
    )
    assert code == 2
    parts = {p["sync_source"]: p for p in report["sources"]}
    assert parts["lab-b"]["error"] and "lab-b" in parts["lab-b"]["error"]
    assert parts["lab-a"]["received"]["total"] == PER_SOURCE
    assert parts["lab-c"]["received"]["total"] == PER_SOURCE

    # the export arrives late: --replay-gaps in shares fetches only what is missing
    folder = tmp_path / "exports" / "lab-b" / "20261120"
    folder.mkdir(parents=True)
    for number in range(PER_SOURCE + 1, 2 * PER_SOURCE + 1):
        (folder / f"{report_key(number)}.hl7").write_bytes(_report(number))
    env = environment(database_url, tmp_path / "consortium.yaml")
    code, report = sync_json(
        env, "--day", DAY.isoformat(), "--replay-gaps", "--jobs", "2", monkeypatch=monkeypatch
    )
    assert code == 0, report
    assert report["totals"]["received"] == len(SOURCES) * PER_SOURCE
    assert _state(database_url)["messages"] == len(SOURCES) * PER_SOURCE


@pytest.mark.parametrize("where", ["option", "consortium file"])
def test_sqlite_refuses_more_than_one_job(
    where: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'adapter.db'}"
    engine = make_engine(url)
    migrate(engine)
    engine.dispose()
    env = environment(url, _night(tmp_path, **({"jobs": 2} if where != "option" else {})))
    given = ["--jobs", "2"] if where == "option" else []
    code, output = run_cli(env, "sync", "--day", DAY.isoformat(), *given, monkeypatch=monkeypatch)
    assert code == 2
    assert "PostgreSQL" in output and "--jobs 1" in output
    assert _items(url) == 0
    # --jobs 1 overrides the file's sync.jobs
    code, output = run_cli(
        env, "sync", "--day", DAY.isoformat(), "--jobs", "1", monkeypatch=monkeypatch
    )
    assert code == 0, output
    assert _items(url) == len(SOURCES) * PER_SOURCE


def test_shares_are_balanced_longest_first() -> None:
    # bench_night's 3,000-document night, seconds per source with --jobs 1 (decision 0061)
    seconds = {
        "referral": 6.1,
        "county-lab": 6.7,
        "liuhe-lab": 2.8,
        "shiqiao-lab": 3.9,
        "discharge": 8.9,
        "referral-cda": 2.8,
        "std-lab": 18.8,
    }
    two = plan(seconds, 2)
    loads = sorted(sum(seconds[s] for s in share) for share in two)
    assert loads[1] - loads[0] <= 1.5  # 24.5 / 25.5
    assert sorted(s for share in two for s in share) == sorted(seconds)
    three = plan(seconds, 3)
    assert ["std-lab"] in three  # the longest alone: no split can beat it
    assert plan({"a": 1.0}, 4) == [["a"]]  # no empty shares


def test_costs_prefer_history_then_format_then_equal() -> None:
    counts: dict[str, int | None] = {"lab": 1000, "cda": 1000, "new": None}
    formats = {"lab": "hl7v2", "cda": "cda", "new": "hl7v2"}
    by_format = expected_costs(list(counts), counts, {"lab": 0.01}, formats)
    assert by_format == {"lab": 1000.0, "cda": 1300.0, "new": 1000.0}  # not all measured
    measured = expected_costs(list(counts), counts, {"lab": 0.01, "cda": 0.05, "new": 0.02}, {})
    assert measured == pytest.approx({"lab": 10.0, "cda": 50.0, "new": 20.0})
    unknown = expected_costs(["a", "b"], {"a": None, "b": None}, {}, {})
    assert unknown == {"a": 1.0, "b": 1.0}

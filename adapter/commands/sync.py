"""``adapter sync``: read the night's sources, reconcile, report; ``adapter sync history``;
``adapter sync schedule`` (the optional daily schedule of the consortium file, run by one
process among several through a lease row). docs/sync.md.

Exit codes: 0 everything reconciled, 1 gaps remain, 2 the configuration is wrong or a
source cannot be reached (the report says which and why).
"""

from __future__ import annotations

import json
import os
import socket
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer

from adapter.commands import common
from adapter.errors import AdapterError

sync_app = typer.Typer(
    help="Nightly synchronisation: read, reconcile, report (docs/sync.md).",
    invoke_without_command=True,
    no_args_is_help=False,
)

Lang = Annotated[str, typer.Option("--lang", help="zh (中文) or en")]


@sync_app.callback()
def sync(
    ctx: typer.Context,
    day: Annotated[
        str | None, typer.Option("--day", help="Business day YYYY-MM-DD (default: yesterday)")
    ] = None,
    source: Annotated[
        list[str] | None, typer.Option("--source", "-s", help="Only this sync source (repeatable)")
    ] = None,
    replay_gaps: Annotated[
        bool, typer.Option("--replay-gaps", help="Fetch and send only the day's gaps")
    ] = False,
    lang: Lang = "zh",
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON")] = False,
    report_file: Annotated[
        Path | None, typer.Option("--report-file", help="Also write the JSON report here")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress lines")] = False,
    jobs: Annotated[
        int | None,
        typer.Option(
            "--jobs",
            "-j",
            min=1,
            max=16,
            help="Processes sharing the sources out (default: sync.jobs, else 1; PostgreSQL)",
        ),
    ] = None,
    share: Annotated[str | None, typer.Option("--share", hidden=True)] = None,
) -> None:
    """Synchronise a night: every sync source of the consortium file (or --source)."""
    if ctx.invoked_subcommand is not None:
        return
    if share is not None:  # a child of `adapter sync --jobs N` (adapter/sync/shares.py)
        raise typer.Exit(run_share(share, source or []))
    code = run_sync(day, source, replay_gaps, lang, as_json, report_file, quiet, jobs)
    raise typer.Exit(code)


def run_sync(
    day: str | None,
    source: list[str] | None,
    replay_gaps: bool,
    lang: str,
    as_json: bool,
    report_file: Path | None,
    quiet: bool,
    jobs: int | None = None,
) -> int:
    from adapter.heap import settled
    from adapter.sync.progress import terminal_progress
    from adapter.sync.report import render
    from adapter.sync.run import Progress, SyncRunner

    if lang not in ("zh", "en"):
        raise common.fail("--lang must be zh or en")
    runtime = common.start(logs=True, load_mappings=False, publish=False)
    try:
        try:
            progress = Progress() if quiet or as_json else terminal_progress()
            count = _jobs(runtime, jobs)
            if count > 1:  # the children translate and store: no pipeline here
                runner = SyncRunner(
                    runtime.consortium,
                    None,
                    runtime.factory,
                    progress=progress,
                    jobs=count,
                    translate_workers=runtime.settings.translate_workers,
                )
                chosen = _day(day) if day else runner.yesterday()
                outcome = runner.run(chosen, source, replay_gaps=replay_gaps)
            else:
                pipeline = _pipeline(runtime, source)
                runner = SyncRunner(
                    runtime.consortium, pipeline, runtime.factory, progress=progress
                )
                chosen = _day(day) if day else runner.yesterday()
                with pipeline.translation_workers(runtime.settings.translate_workers), settled():
                    outcome = runner.run(chosen, source, replay_gaps=replay_gaps)
        except AdapterError as exc:
            raise common.fail(f"sync: {exc.message}") from None
    finally:
        runtime.close()
    if report_file is not None:
        report_file.write_text(
            json.dumps(outcome.report, ensure_ascii=False, indent=2), encoding="utf-8"
        )
    if as_json:
        typer.echo(json.dumps(outcome.report, ensure_ascii=False, indent=2))
    else:
        typer.echo(render(outcome.report, lang))
    return outcome.exit_code


def _jobs(runtime, given: int | None) -> int:  # type: ignore[no-untyped-def]
    """--jobs, else the consortium file's sync.jobs, else 1 (decision 0061)."""
    sync = runtime.consortium.sync
    count = given if given is not None else (sync.jobs if sync is not None else 1)
    if count > 1 and runtime.engine.dialect.name == "sqlite":
        raise AdapterError(SQLITE_ONE_JOB)
    return count


SQLITE_ONE_JOB = (
    "--jobs above 1 needs PostgreSQL: SQLite has one writer, so the processes would take "
    "turns (docs/sync.md, decision 0061); run with --jobs 1"
)


def run_share(share: str, ids: list[str]) -> int:
    """A child of ``adapter sync --jobs N``: synchronise ``ids`` in the run named by
    ``share`` (``RUN:PARENT_PID``); progress and, last, the sources it could not read as
    JSON lines on stdout (adapter/sync/shares.py)."""
    import sys

    from adapter.heap import settled
    from adapter.sync.run import Progress, SyncRunner
    from adapter.sync.shares import SHARE_LINE, ChildProgress, die_with_parent

    run_id, _, parent = share.partition(":")
    if parent.isdigit():
        die_with_parent(int(parent))
    runtime = common.start(logs=True, load_mappings=False, publish=False)
    try:
        events = ChildProgress(sys.stdout)
        progress = Progress(start=events.start, step=events.step, end=events.end)
        try:
            pipeline = _pipeline(runtime, ids)
            runner = SyncRunner(runtime.consortium, pipeline, runtime.factory, progress=progress)
            with pipeline.translation_workers(runtime.settings.translate_workers), settled():
                errors = runner.run_share(run_id, ids)
        except AdapterError as exc:
            raise common.fail(f"sync: {exc.message}") from None
        events.emit({SHARE_LINE: {"errors": errors}})
    finally:
        runtime.close()
    return 0


def _pipeline(runtime, chosen: list[str] | None):  # type: ignore[no-untyped-def]
    """The pipeline with the mappings of the synchronised sources only (a broken one stops
    the run, exit 2): the others are not needed and loading them all slows every start."""
    from adapter.runtime import make_pipeline

    sync = runtime.consortium.sync
    systems = sorted(
        {s.source for s in (sync.sources if sync else []) if not chosen or s.id in chosen}
    )
    return make_pipeline(
        runtime.settings,
        runtime.consortium,
        runtime.factory,
        only_sources=systems,
        recognition=runtime.recognition,
    )


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise common.fail(f"--day {value!r}: give YYYY-MM-DD") from None


@sync_app.command()
def history(
    limit: Annotated[int, typer.Option(min=1)] = 20,
    source: Annotated[str | None, typer.Option("--source", "-s")] = None,
    lang: Lang = "zh",
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """The last sync runs: day, state, exit code, received, gaps, alerts."""
    from adapter.sync import ledger

    runtime = common.start(check_connectors=False, load_mappings=False, publish=False)
    try:
        with runtime.factory() as session:
            runs = ledger.history(session, limit, source)
            rows = [
                {
                    "run": r.id,
                    "day": r.day,
                    "state": r.state,
                    "replay": r.replay,
                    "started_at": r.started_at.isoformat(),
                    "finished_at": r.finished_at.isoformat() if r.finished_at else None,
                    "attempts": r.attempts,
                    "exit_code": r.exit_code,
                    "sources": r.sources,
                    "totals": (r.report or {}).get("totals"),
                }
                for r in runs
            ]
    finally:
        runtime.close()
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    head = (
        ("运行", "业务日期", "状态", "退出码", "接收", "缺口", "告警")
        if lang == "zh"
        else ("run", "day", "state", "exit", "received", "gaps", "alerts")
    )
    widths = (8, 10, 8, 4, 8, 6, 6)
    typer.echo("  ".join(f"{h:{w}}" for h, w in zip(head, widths, strict=True)))
    for row in rows:
        totals = row["totals"] or {}
        cells = (
            row["run"][:8],
            row["day"],
            row["state"] + ("*" if row["replay"] else ""),
            "" if row["exit_code"] is None else row["exit_code"],
            totals.get("received", ""),
            totals.get("gaps", ""),
            totals.get("alerts", ""),
        )
        typer.echo("  ".join(f"{c!s:{w}}" for c, w in zip(cells, widths, strict=True)))


@sync_app.command()
def schedule(
    once: Annotated[
        bool, typer.Option("--once", help="Check once whether a run is due, then exit")
    ] = False,
) -> None:
    """Run the consortium file's sync.schedule: every process may run this; a lease row in
    the database lets exactly one of them run each day's sync."""
    from zoneinfo import ZoneInfo

    from adapter.sync.lease import release, take

    runtime = common.start(logs=True)
    config = runtime.consortium.sync
    if config is None or config.schedule is None:
        runtime.close()
        raise common.fail("the consortium file has no sync.schedule")
    zone = ZoneInfo(runtime.consortium.timezone or "Asia/Shanghai")
    holder = f"{socket.gethostname()}:{os.getpid()}"
    hour, minute = (int(p) for p in config.schedule.daily_at.split(":"))
    runtime.close()
    while True:
        now = datetime.now(zone)
        due = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
        day = (now - timedelta(days=1)).date()
        if now >= due:
            runtime = common.start(logs=True)
            try:
                with runtime.factory.begin() as session:
                    mine = take(
                        session,
                        "sync",
                        holder,
                        day.isoformat(),
                        config.schedule.lease_seconds,
                        datetime.now(UTC),
                    )
            finally:
                runtime.close()
            if mine:
                code = run_sync(day.isoformat(), None, False, "zh", False, None, True)
                runtime = common.start(logs=True)
                try:
                    with runtime.factory.begin() as session:
                        release(session, "sync", holder, day.isoformat() if code != 2 else None)
                finally:
                    runtime.close()
        if once:
            return
        time.sleep(30)


def register(app: typer.Typer) -> None:
    app.add_typer(sync_app, name="sync")

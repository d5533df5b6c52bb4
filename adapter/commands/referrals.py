"""The ``adapter referrals`` commands: move a referral Task as its sender or receiver
(docs/referral-loop.md). Each is one change through the state machine, the store and the
outbox, like the FHIR PATCH; a refusal prints the rule and exits 1.

    adapter referrals show TASK
    adapter referrals accept TASK --facility F [--booked]
    adapter referrals reject TASK --facility F --reason CODE [--text TEXT]
    adapter referrals arrive TASK --facility F [--admitted] [--encounter Encounter/ID]
    adapter referrals close TASK --facility F [--output Type/ID ...]
    adapter referrals cancel TASK --facility F
    adapter referrals ledger [--facility F] [--from D --to D | --week FRIDAY] [--incomplete]
                             [--late] --format csv|xlsx|html
    adapter referrals analysis [--facility F] --from D --to D --format json|csv|xlsx
    adapter referrals worklist [--facility F] [--department D]
    adapter referrals follow-up TASK --facility F [--record Encounter/ID]
    adapter referrals scheduler [--once]
    adapter referrals rebuild-ledger
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from adapter.commands import common

if TYPE_CHECKING:
    from adapter.referral.machine import Change

app = typer.Typer(help="Referral Tasks: accept, reject, arrive, close.", no_args_is_help=True)

FacilityOption = Annotated[str, typer.Option(help="The facility acting (sender or receiver)")]
TaskArgument = Annotated[str, typer.Argument(help="The Task id (or Task/<id>)")]


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="referrals")
    # ``adapter scheduler``: the same as ``adapter referrals scheduler``
    root.command("scheduler")(scheduler)


def _id(task: str) -> str:
    return task.removeprefix("Task/")


def _apply(task: str, facility: str, change: Change) -> None:
    from adapter.referral.apply import RefusedError, apply_change, audit_change

    runtime = common.start(check_connectors=False, load_mappings=False, publish=False)
    try:
        if runtime.consortium.facility(facility) is None:
            known = ", ".join(f.id for f in runtime.consortium.facilities)
            raise common.fail(f"unknown facility {facility!r}; one of: {known}")
        now = datetime.now(UTC)
        change = replace(change, at=now)
        try:
            with runtime.factory.begin() as session:
                applied = apply_change(
                    session, runtime.consortium, _id(task), change, facility, now=now
                )
                if applied.changed:
                    audit_change(
                        session, _id(task), facility, at=now, applied=applied, interaction="cli"
                    )
        except RefusedError as refused:
            with runtime.factory.begin() as session:  # the refused one was rolled back
                audit_change(session, _id(task), facility, at=now, refused=refused.rule)
            raise common.fail(refused.message, code=1) from None
        except common.AdapterError as error:  # not found
            raise common.fail(error.message, code=1) from None
    finally:
        runtime.close()
    word = "changed" if applied.changed else "unchanged (already so)"
    typer.echo(
        f"Task/{applied.task['id']} {word}: version {applied.version}, {applied.task['status']}"
        f" / {(applied.task.get('businessStatus') or {}).get('text', '-')}"
        f"; {len(applied.outbox)} deliveries queued"
    )
    for note in applied.notes:
        typer.echo(f"  note: {note}")
    if applied.request:
        typer.echo(f"  the referral's ServiceRequest is now {applied.request}")


@app.command("show")
def show(task: TaskArgument) -> None:
    """The Task's state and the other Tasks of its referral (references only)."""
    from adapter.referral.apply import tasks_of
    from adapter.store import read_only, read_resource

    runtime = common.start(check_connectors=False, load_mappings=False, publish=False)
    try:
        with runtime.factory() as session:
            read_only(session)
            body = read_resource(session, "Task", _id(task))
            if body is None:
                raise common.fail(f"Task/{_id(task)} is not known", code=1)
            focus = str((body.get("focus") or {}).get("reference") or "")
            others = tasks_of(session, focus) if focus else []
            request = read_resource(session, *focus.split("/", 1)) if "/" in focus else None
    finally:
        runtime.close()
    typer.echo(f"referral {focus} ({(request or {}).get('status', '?')})")
    for item in sorted(others, key=lambda t: t["id"]):
        mark = "*" if item["id"] == body["id"] else " "
        business = (item.get("businessStatus") or {}).get("text", "-")
        reason = (item.get("statusReason") or {}).get("text")
        outputs = [o["valueReference"]["reference"] for o in item.get("output") or []]
        typer.echo(
            f"{mark} Task/{item['id']}  v{item['meta']['versionId']}  {item['status']}"
            f" / {business}  owner {(item.get('owner') or {}).get('reference', '-')}"
            + (f"  reason: {reason}" if reason else "")
            + (f"  output: {', '.join(outputs)}" if outputs else "")
        )


@app.command("accept")
def accept(
    task: TaskArgument,
    facility: FacilityOption,
    booked: Annotated[bool, typer.Option(help="A bed or clinic is booked (已预约)")] = False,
) -> None:
    """The receiver takes the referral (已同意, or 已预约)."""
    from adapter.referral.machine import Change

    _apply(task, facility, Change("accepted", "booked" if booked else None))


@app.command("reject")
def reject(
    task: TaskArgument,
    facility: FacilityOption,
    reason: Annotated[str, typer.Option(help="A referral-rejection-reason code, e.g. bed-full")],
    text: Annotated[str | None, typer.Option(help="Free text beside the code")] = None,
) -> None:
    """The receiver declines (已拒绝) with a coded reason."""
    from adapter.referral.machine import Change

    _apply(task, facility, Change("rejected", reason=reason, reason_text=text))


@app.command("arrive")
def arrive(
    task: TaskArgument,
    facility: FacilityOption,
    admitted: Annotated[bool, typer.Option(help="Admitted as an inpatient (已入院)")] = False,
    encounter: Annotated[str | None, typer.Option(help="The receiver's Encounter/<id>")] = None,
) -> None:
    """The patient arrived at the receiver (已到诊, or 已入院)."""
    from adapter.referral.machine import Change

    output = (encounter,) if encounter else ()
    _apply(
        task, facility, Change("in-progress", "admitted" if admitted else "arrived", output=output)
    )


@app.command("close")
def close(
    task: TaskArgument,
    facility: FacilityOption,
    output: Annotated[
        list[str] | None, typer.Option(help="Feedback: Encounter/<id>, Composition/<id> ...")
    ] = None,
) -> None:
    """The receiver completes the referral: 已关闭 with the Encounter and a discharge
    summary or consult note in Task.output, else 无反馈关闭 (closed without feedback)."""
    from adapter.referral.machine import Change

    _apply(task, facility, Change("completed", output=tuple(output or ())))


@app.command("cancel")
def cancel(task: TaskArgument, facility: FacilityOption) -> None:
    """The sender or the receiver withdraws the referral (已取消)."""
    from adapter.referral.machine import Change

    _apply(task, facility, Change("cancelled"))


# -- the 转诊台账, the analysis, the worklist, the scheduler (docs/ledger.md) -----------------

FormatOption = Annotated[str, typer.Option("--format", help="csv, xlsx, html (ledger) or json")]


def _period(start: str | None, end: str | None, week: str | None, zone: Any) -> tuple[Any, Any]:
    from datetime import date, time, timedelta

    from adapter.referral.report import week_ending

    try:
        if week:
            return week_ending(date.fromisoformat(week), zone)
        first = datetime.combine(date.fromisoformat(start), time(), zone) if start else None
        last = (
            datetime.combine(date.fromisoformat(end) + timedelta(days=1), time(), zone)
            if end
            else None
        )
    except ValueError as error:
        raise common.fail(str(error)) from None
    return first, last


def _progress(count: int) -> None:
    typer.echo(f"  {count} rows ...", err=True)


@app.command("ledger")
def ledger(
    facility: Annotated[str | None, typer.Option(help="Sender or receiver")] = None,
    start: Annotated[str | None, typer.Option("--from", help="First day, YYYY-MM-DD")] = None,
    end: Annotated[str | None, typer.Option("--to", help="Last day (included)")] = None,
    week: Annotated[str | None, typer.Option(help="The week ending this Friday")] = None,
    department: Annotated[str | None, typer.Option(help="Sending or receiving department")] = None,
    direction: Annotated[str | None, typer.Option(help="up, down or same")] = None,
    status: Annotated[str | None, typer.Option(help="Task.status or businessStatus code")] = None,
    keyword: Annotated[str | None, typer.Option("--q", help="Keyword")] = None,
    incomplete: Annotated[
        bool, typer.Option("--incomplete", help="Only incomplete slips (缺项 says what)")
    ] = False,
    late: Annotated[bool, typer.Option("--late", help="Only late slips (补录)")] = False,
    fmt: FormatOption = "csv",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write")] = None,
) -> None:
    """Export the 转诊台账 (CSV, XLSX or printable HTML; progress every 1000 rows)."""
    from zoneinfo import ZoneInfo

    from adapter.referral import report

    if fmt not in ("csv", "xlsx", "html"):
        raise common.fail("--format is csv, xlsx or html")
    runtime = common.start(check_connectors=False, load_mappings=False, publish=False)
    try:
        zone = ZoneInfo(runtime.consortium.timezone or "Asia/Shanghai")
        first, last = _period(start, end, week, zone)
        filters = report.Filters(
            facility=facility,
            department=department,
            direction=direction,
            status=status,
            start=first,
            end=last,
            keyword=keyword,
            incomplete=True if incomplete else None,
            backfilled=True if late else None,
        )
        target = output or Path(f"referral-ledger.{fmt}")
        with runtime.factory() as session:
            count = report.export(
                runtime.consortium, report.rows(session, filters), fmt, target, progress=_progress
            )
    finally:
        runtime.close()
    typer.echo(f"{count} referrals written to {target}")


@app.command("analysis")
def analysis_command(
    facility: Annotated[str | None, typer.Option(help="One facility (else the consortium)")] = None,
    start: Annotated[str | None, typer.Option("--from", help="First day, YYYY-MM-DD")] = None,
    end: Annotated[str | None, typer.Option("--to", help="Last day (included)")] = None,
    fmt: FormatOption = "json",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write")] = None,
) -> None:
    """The quarterly analysis (docs/ledger.md) as JSON, CSV or XLSX."""
    import json
    from zoneinfo import ZoneInfo

    from adapter.export import write_csv, write_xlsx
    from adapter.referral import analysis

    if fmt not in ("json", "csv", "xlsx"):
        raise common.fail("--format is json, csv or xlsx")
    if not start or not end:
        raise common.fail("give --from and --to (YYYY-MM-DD)")
    runtime = common.start(check_connectors=False, load_mappings=False, publish=False)
    try:
        zone = ZoneInfo(runtime.consortium.timezone or "Asia/Shanghai")
        first, last = _period(start, end, None, zone)
        typer.echo(f"analysing {start} .. {end} ...", err=True)
        with runtime.factory() as session:
            result = analysis.analyse(
                session,
                runtime.consortium,
                first,
                last,
                facility=facility,
                progress=lambda text: typer.echo(f"  {text}", err=True),
            )
    finally:
        runtime.close()
    if fmt == "json":
        text = json.dumps(result, ensure_ascii=False, indent=2)
        if output:
            output.write_text(text, encoding="utf-8")
        else:
            typer.echo(text)
        return
    target = output or Path(f"referral-analysis.{fmt}")
    (write_csv if fmt == "csv" else write_xlsx)(target, analysis.headers(), analysis.flat(result))
    typer.echo(f"analysis of {result['referrals']} referrals written to {target}")


@app.command("worklist")
def worklist(
    facility: Annotated[str | None, typer.Option(help="The facility that must act")] = None,
    department: Annotated[str | None, typer.Option(help="Its department")] = None,
) -> None:
    """The overdue worklist: deadlines breached and not yet done."""
    from sqlalchemy import select

    from adapter.referral.deadlines import label
    from adapter.store.models import ReferralOverdue

    runtime = common.start(check_connectors=False, load_mappings=False, publish=False)
    try:
        with runtime.factory() as session:
            q = select(ReferralOverdue).where(ReferralOverdue.resolved_at.is_(None))
            if facility:
                q = q.where(ReferralOverdue.facility_id == facility)
            if department:
                q = q.where(ReferralOverdue.department == department)
            items = session.scalars(q.order_by(ReferralOverdue.due_at)).all()
    finally:
        runtime.close()
    for o in items:
        typer.echo(
            f"Task/{o.task_id}  {label(o.kind)}  due {o.due_at.isoformat(timespec='minutes')}"
            f"  {o.facility_id or '-'} {o.department or ''}"
        )
    typer.echo(f"{len(items)} overdue")


@app.command("follow-up")
def follow_up(
    task: TaskArgument,
    facility: FacilityOption,
    record: Annotated[str | None, typer.Option(help="The follow-up record, Type/id")] = None,
) -> None:
    """Record a follow-up of the referred patient: the sender's after an up-referral, the
    primary facility's after a down-referral."""
    from adapter.referral.apply import RefusedError
    from adapter.referral.follow_up import audit_follow_up, record_follow_up

    runtime = common.start(check_connectors=False, load_mappings=False, publish=False)
    try:
        now = datetime.now(UTC)
        try:
            with runtime.factory.begin() as session:
                row = record_follow_up(
                    session, runtime.consortium, _id(task), facility, at=now, record=record
                )
                count = row.follow_ups
        except RefusedError as refused:
            with runtime.factory.begin() as session:  # the refused one was rolled back
                audit_follow_up(session, _id(task), facility, at=now, refused=refused.rule)
            raise common.fail(refused.message, code=1) from None
        except common.AdapterError as error:  # not in the ledger, a malformed record
            raise common.fail(error.message, code=1) from None
    finally:
        runtime.close()
    typer.echo(f"Task/{_id(task)}: follow-up {count} recorded")


@app.command("scheduler")
def scheduler(
    once: Annotated[bool, typer.Option("--once", help="One pass, then exit")] = False,
) -> None:
    """Watch the deadlines: breaches to the worklist, both parties notified, untouched Tasks
    expired. Several may run (PostgreSQL: rows are taken FOR UPDATE SKIP LOCKED)."""
    import time as clock

    from adapter.referral.scheduler import run_once

    runtime = common.start(
        logs=not once, check_connectors=False, load_mappings=False, publish=False
    )
    interval = runtime.consortium.referrals.deadlines.scheduler_interval_minutes * 60
    try:
        while True:
            report = run_once(runtime.factory, runtime.consortium, now=datetime.now(UTC))
            typer.echo(
                f"{len(report.listed)} deadlines listed, {len(report.expired)} expired, "
                f"{report.notices} notices queued"
            )
            if once:
                return
            clock.sleep(interval)
    except KeyboardInterrupt:
        return
    finally:
        runtime.close()


@app.command("rebuild-ledger")
def rebuild_ledger() -> None:
    """Write the ledger row of every stored referral Task (after an upgrade to migration
    0012: referrals made before it have none). A step reached before the rebuild is dated
    by the Task's last change; rows already there keep their step times."""
    from sqlalchemy import select

    from adapter.referral import ledger as ledger_rows
    from adapter.store.models import Resource

    runtime = common.start(check_connectors=False, load_mappings=False, publish=False)
    count = 0
    try:
        with runtime.factory() as reading:
            stored = reading.execute(
                select(Resource.id, Resource.last_updated).where(
                    Resource.resource_type == "Task", Resource.deleted.is_(False)
                )
            ).all()
        for task_id, changed in stored:
            with runtime.factory.begin() as session:
                task = session.get(Resource, ("Task", task_id))
                if task is None:
                    continue
                row = ledger_rows.note_task(
                    session, runtime.consortium, task.body, at=changed, step_at=changed
                )
                count += row is not None
            if count and count % 1000 == 0:
                _progress(count)
    finally:
        runtime.close()
    typer.echo(f"{count} referral Tasks in the ledger")

"""The ``adapter referrals`` commands: move a referral Task as its sender or receiver
(docs/referral-loop.md). Each is one change through the state machine, the store and the
outbox, like the FHIR PATCH; a refusal prints the rule and exits 1.

    adapter referrals show TASK
    adapter referrals accept TASK --facility F [--booked]
    adapter referrals reject TASK --facility F --reason CODE [--text TEXT]
    adapter referrals arrive TASK --facility F [--admitted] [--encounter Encounter/ID]
    adapter referrals close TASK --facility F [--output Type/ID ...]
    adapter referrals cancel TASK --facility F
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer

from adapter.commands import common

if TYPE_CHECKING:
    from adapter.referral.machine import Change

app = typer.Typer(help="Referral Tasks: accept, reject, arrive, close.", no_args_is_help=True)

FacilityOption = Annotated[str, typer.Option(help="The facility acting (sender or receiver)")]
TaskArgument = Annotated[str, typer.Argument(help="The Task id (or Task/<id>)")]


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="referrals")


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

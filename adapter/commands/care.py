"""The ``adapter care`` commands: which facility cares for which person, and why
(docs/routing.md). They need the consortium file and the database, not the mappings.

    adapter care list --person P | --facility F [--open]
    adapter care grant P F --by WHO --why TEXT [--until TIME]
    adapter care revoke P F --by WHO --why TEXT
    adapter care register P F [--by WHO] [--why TEXT]
    adapter care close-referral ServiceRequest/ID [--at TIME]
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated

import typer

from adapter.commands import common

if TYPE_CHECKING:
    from adapter.runtime import Runtime
    from adapter.store.care import CareRow

app = typer.Typer(help="Care relationships: who cares for whom, and why.", no_args_is_help=True)


def _open() -> Runtime:
    return common.start(check_connectors=False, load_mappings=False, publish=False)


def _time(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise common.fail(
            f"{option} {value!r}: give an ISO time, e.g. 2026-03-01T08:00+08:00"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _facility(runtime: Runtime, facility: str) -> None:
    if runtime.consortium.facility(facility) is None:
        known = ", ".join(f.id for f in runtime.consortium.facilities)
        runtime.close()
        raise common.fail(f"unknown facility {facility!r}; one of: {known}")


def _echo(row: CareRow) -> None:
    end = row.end_at.isoformat() if row.end_at else "open"
    who = f"  by {row.actor}: {row.note}" if row.actor else ""
    ref = f" {row.ref}" if row.ref else ""
    typer.echo(
        f"{row.id:>8}  {row.person_id:24}  {row.facility_id:28}  {row.source}{ref}  "
        f"{row.start_at.isoformat()} -> {end}{who}"
    )


@app.command("list")
def list_care(
    person: Annotated[str | None, typer.Option(help="A Patient id (its person's care)")] = None,
    facility: Annotated[str | None, typer.Option(help="A facility id")] = None,
    open_only: Annotated[bool, typer.Option("--open", help="Only those open now")] = False,
    limit: Annotated[int, typer.Option(min=1)] = 100,
) -> None:
    """Care relationships of a person and/or a facility, newest first."""
    from adapter.identity import keys_of
    from adapter.store import care, read_only

    if person is None and facility is None:
        raise common.fail("give --person or --facility")
    runtime = _open()
    try:
        if facility is not None:
            _facility(runtime, facility)
        with runtime.factory() as session:
            read_only(session)
            persons = None
            if person is not None:
                persons = keys_of(session, person)
            rows = care.list_care(
                session,
                persons=persons,
                facility=facility,
                open_at=datetime.now(UTC) if open_only else None,
                limit=limit,
            )
        for row in rows:
            _echo(row)
        typer.echo(f"{len(rows)} relationships")
    finally:
        runtime.close()


@app.command()
def grant(
    person: Annotated[str, typer.Argument(help="Patient id")],
    facility: Annotated[str, typer.Argument(help="Facility id")],
    by: Annotated[str, typer.Option(help="Who grants")],
    why: Annotated[str, typer.Option(help="Why")],
    until: Annotated[
        str | None, typer.Option(help="Until this time (ISO); open if left out")
    ] = None,
) -> None:
    """Grant: the facility cares for the person (receives the person's resources)."""
    from adapter.identity import person_of
    from adapter.store import care

    end = _time(until, "--until")
    runtime = _open()
    try:
        _facility(runtime, facility)
        with runtime.factory.begin() as session:
            row = care.grant(
                session,
                person_of(session, person),
                facility,
                at=datetime.now(UTC),
                until=end,
                actor=by,
                note=why,
            )
        _echo(row)
    finally:
        runtime.close()


@app.command()
def revoke(
    person: Annotated[str, typer.Argument(help="Patient id")],
    facility: Annotated[str, typer.Argument(help="Facility id")],
    by: Annotated[str, typer.Option(help="Who revokes")],
    why: Annotated[str, typer.Option(help="Why")],
) -> None:
    """Revoke: the facility no longer receives the person's resources (what is queued for it
    is withdrawn at the worker's next pass), until a new grant."""
    from adapter.identity import person_of
    from adapter.store import care

    runtime = _open()
    try:
        _facility(runtime, facility)
        with runtime.factory.begin() as session:
            row = care.revoke(
                session,
                person_of(session, person),
                facility,
                at=datetime.now(UTC),
                actor=by,
                note=why,
            )
        _echo(row)
    finally:
        runtime.close()


@app.command("register")
def register_primary(
    person: Annotated[str, typer.Argument(help="Patient id")],
    facility: Annotated[str, typer.Argument(help="Facility id")],
    by: Annotated[str | None, typer.Option(help="Who registers")] = None,
    why: Annotated[str | None, typer.Option(help="Why (签约, 健康档案 ...)")] = None,
) -> None:
    """The person's registered primary facility (签约 / 健康档案) from now on."""
    from adapter.identity import keys_of, person_of
    from adapter.store import care

    runtime = _open()
    try:
        _facility(runtime, facility)
        with runtime.factory.begin() as session:
            found = person_of(session, person)
            care.register(
                session,
                found,
                facility,
                at=datetime.now(UTC),
                detail="command line",
                actor=by,
                note=why,
                also=keys_of(session, found),
            )
            rows = care.list_care(session, persons={found}, facility=facility, limit=50)
        for row in rows:
            if row.source == "registered":
                _echo(row)
    finally:
        runtime.close()


@app.command("close-referral")
def close_referral(
    referral: Annotated[str, typer.Argument(help="ServiceRequest/<id> of the referral")],
    at: Annotated[str | None, typer.Option(help="When the loop closed (ISO); now")] = None,
) -> None:
    """The referral's loop closed: its parties' care ends ``referral_after_close_days``
    (consortium file, 30 by default) later."""
    from adapter.store import care

    if not referral.startswith("ServiceRequest/"):
        raise common.fail("give the referral as ServiceRequest/<id>")
    moment = _time(at, "--at") or datetime.now(UTC)
    runtime = _open()
    try:
        days = runtime.consortium.care.windows.referral_after_close_days
        with runtime.factory.begin() as session:
            count = care.close_referral(
                session,
                referral,
                at=moment,
                end=moment + timedelta(days=days),
                detail="closed (command line)",
            )
        typer.echo(
            f"{referral}: {count} relationships end {days:g} days after {moment.isoformat()}"
        )
    finally:
        runtime.close()


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="care")

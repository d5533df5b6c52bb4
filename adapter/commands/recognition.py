"""``adapter recognition ...``: 检查检验结果互认 from the command line (docs/recognition.md).

check    load the catalogue (file:line errors) and print what it holds
query    a person's recognisable results per item, and why the others are not
decide   record a doctor's decision (互认 / 不互认 with a reason) as a Task
rate     the monthly 互认率 per facility and item
corrections       recognised results changed afterwards
consent           record a person's consent that a facility be shown their results
revoke-consent    the person withdrew it
mark              give stored results the mark the catalogue gives them now
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from adapter.commands import common

if TYPE_CHECKING:
    from adapter.recognition.catalogue import Catalogue
    from adapter.runtime import Runtime

app = typer.Typer(help="检查检验结果互认: the catalogue, recognisable results, decisions.")


def _open() -> Runtime:
    return common.start(check_connectors=False, load_mappings=False, publish=False)


def _catalogue(runtime: Runtime) -> Catalogue:
    if runtime.recognition is None:
        runtime.close()
        raise common.fail(
            "recognition is not configured: no recognition catalogue "
            "(ADAPTER_RECOGNITION_CATALOGUE, or recognition.yaml beside the consortium file)"
        )
    return runtime.recognition


def _time(value: str | None, name: str) -> datetime:
    if value is None:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise common.fail(
            f"{name} {value!r}: give an ISO time, e.g. 2026-11-26T10:00+08:00"
        ) from None
    if moment.tzinfo is None:
        raise common.fail(f"{name} {value!r}: give the zone too, e.g. +08:00")
    return moment


@app.command()
def check() -> None:
    """Load the recognition catalogue and print its edition, items and qualifications."""
    runtime = _open()
    try:
        catalogue = _catalogue(runtime)
        kinds: dict[str, int] = {}
        for item in catalogue.items:
            kinds[item.kind.value] = kinds.get(item.kind.value, 0) + 1
        typer.echo(f"edition {catalogue.edition} (effective {catalogue.effective})")
        typer.echo(
            f"{len(catalogue.items)} items ("
            + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
            + f"), {len(catalogue.qualifications)} qualified facilities, "
            f"{len(catalogue.reasons)} reasons"
        )
        typer.echo(
            "stored results recognisable when issued carry the mark in meta.tag"
            if catalogue.mark_results
            else "stored results are not marked (mark_results: false)"
        )
    finally:
        runtime.close()


@app.command()
def query(
    patient: Annotated[str, typer.Argument(help="Patient id (any record of the person)")],
    code: Annotated[
        list[str] | None, typer.Option("--code", "-c", help="Catalogue item code (repeatable)")
    ] = None,
    local_code: Annotated[
        list[str] | None,
        typer.Option("--local-code", help="The ordering facility's own item code (repeatable)"),
    ] = None,
    facility: Annotated[
        str | None, typer.Option("--facility", "-f", help="The ordering facility's id")
    ] = None,
    setting: Annotated[
        str, typer.Option(help="Care setting: outpatient, inpatient, emergency, physical-exam")
    ] = "outpatient",
    at: Annotated[str | None, typer.Option(help="As at this time (ISO, with zone)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the FHIR Parameters")] = False,
) -> None:
    """A person's prior results that are recognisable now, per item (none given: every item
    the person has a result of), and why the others are not. Exit 1 when none is."""
    from adapter.recognition.catalogue import SETTINGS
    from adapter.recognition.parameters import parameters
    from adapter.recognition.query import WHY, Question, ask, zone_of
    from adapter.store import resource_state

    if setting not in SETTINGS:
        raise common.fail(f"--setting {setting!r}: one of {', '.join(SETTINGS)}")
    if local_code and not facility:
        raise common.fail("--local-code needs --facility (whose code it is)")
    moment = _time(at, "--at")
    runtime = _open()
    try:
        catalogue = _catalogue(runtime)
        consortium = runtime.consortium
        if facility and consortium.facility(facility) is None:
            raise common.fail(f"--facility {facility!r} is not a facility of the consortium")
        question = Question(patient, moment, code or (), local_code or (), facility, setting)
        with runtime.factory() as session:
            state = resource_state(session, "Patient", patient)
            if state is None or state.deleted:
                raise common.fail(f"Patient/{patient} is not known", code=1)
            answers = ask(session, catalogue, consortium, question)
    finally:
        runtime.close()
    if as_json:
        body = parameters(answers, catalogue, consortium)
        typer.echo(json.dumps(body, ensure_ascii=False, indent=2))
    else:
        zone = zone_of(consortium)
        typer.echo(f"catalogue {catalogue.edition}, as at {moment.astimezone(zone).isoformat()}")
        for answer in answers:
            item = answer.item
            title = f"{item.code} {item.name} [{item.mark}]" if item else answer.asked
            state_text = "recognisable" if answer.recognisable else f"not: {answer.reason}"
            typer.echo(f"{title}: {state_text}")
            for c in answer.candidates:
                taken = c.taken.astimezone(zone).strftime("%Y-%m-%d %H:%M") if c.taken else "-"
                mark = "yes" if c.recognisable else f"no  {c.reason} ({WHY[c.reason or '']})"
                detail = f": {c.detail}" if c.detail else ""
                typer.echo(f"  {c.reference}  {c.facility_id or '-'}  {taken}  {mark}{detail}")
    if not any(a.recognisable for a in answers):
        raise typer.Exit(1)


@app.command()
def decide(
    patient: Annotated[str, typer.Argument(help="Patient id")],
    item: Annotated[str, typer.Option("--item", "-i", help="Catalogue item code")],
    order: Annotated[str, typer.Option(help="The new order: HIS order number or reference")],
    facility: Annotated[str, typer.Option("--facility", "-f", help="The ordering facility")],
    doctor: Annotated[str, typer.Option(help="The ordering doctor's staff number (工号)")],
    recognised: Annotated[
        bool, typer.Option("--recognised/--not-recognised", help="互认 / 不互认")
    ],
    prior: Annotated[
        str | None, typer.Option(help="The prior result, e.g. Observation/<id>")
    ] = None,
    reason: Annotated[str | None, typer.Option(help="Reason code when not recognised")] = None,
    text: Annotated[str | None, typer.Option(help="Reason text (needed for 'other')")] = None,
    department: Annotated[str | None, typer.Option(help="The ordering department")] = None,
    setting: Annotated[str, typer.Option(help="Care setting (picks the window)")] = "outpatient",
    at: Annotated[str | None, typer.Option(help="When decided (ISO, with zone)")] = None,
) -> None:
    """Record a doctor's decision on one ordered item; the same decision twice is kept once."""
    from adapter.errors import AdapterError
    from adapter.recognition.catalogue import SETTINGS
    from adapter.recognition.decisions import DecisionInput, record
    from adapter.store import resource_state

    if setting not in SETTINGS:
        raise common.fail(f"--setting {setting!r}: one of {', '.join(SETTINGS)}")
    decided_at = _time(at, "--at") if at else None
    runtime = _open()
    try:
        catalogue = _catalogue(runtime)
        decision = DecisionInput(
            patient_id=patient,
            order_id=order,
            item_code=item,
            facility_id=facility,
            doctor=doctor,
            decision="recognised" if recognised else "not-recognised",
            prior=prior,
            reason_code=reason,
            reason_text=text,
            department=department,
            decided_at=decided_at,
            setting=setting,
        )
        try:
            with runtime.factory.begin() as session:
                state = resource_state(session, "Patient", patient)
                if state is None or state.deleted:
                    raise common.fail(f"Patient/{patient} is not known", code=1)
                done = record(
                    session, catalogue, runtime.consortium, decision, now=datetime.now(UTC)
                )
        except AdapterError as exc:
            raise common.fail(exc.message, code=1) from None
    finally:
        runtime.close()
    task = done.task
    what = "recorded" if done.created else ("revised" if done.changed else "already recorded")
    typer.echo(f"{what}: Task/{task['id']} version {task['meta']['versionId']}")


@app.command()
def rate(
    month: Annotated[str, typer.Option(help="The month, YYYY-MM (consortium time zone)")],
    facility: Annotated[str | None, typer.Option("--facility", "-f")] = None,
    by: Annotated[
        str | None,
        typer.Option(help="Group by facility, department, doctor, item (comma separated)"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write a spreadsheet: a .csv or .xlsx file")
    ] = None,
) -> None:
    """The monthly 互认率: recognised / eligible, the reasons, viewed, tests and cost avoided."""
    from adapter.export import write_csv, write_xlsx
    from adapter.recognition.query import zone_of
    from adapter.recognition.rate import monthly_rates, parse_by, prices_of, table, yuan

    if out is not None and out.suffix.lower() not in (".csv", ".xlsx"):
        raise common.fail(f"--out {out.name}: a .csv or .xlsx file")
    runtime = _open()
    try:
        catalogue = _catalogue(runtime)
        try:
            groups = parse_by(by)
            with runtime.factory() as session:
                rates = monthly_rates(
                    session,
                    month,
                    zone_of(runtime.consortium),
                    facility_id=facility,
                    by=groups,
                    prices=prices_of(catalogue.items),
                )
        except ValueError as exc:
            raise common.fail(str(exc)) from None
    finally:
        runtime.close()
    if out is not None:
        headers, rows = table(rates, groups)
        write = write_csv if out.suffix.lower() == ".csv" else write_xlsx
        written = write(out, headers, rows)
        typer.echo(f"{written} rows written to {out}")
        return
    if as_json:
        typer.echo(json.dumps([r.as_dict(groups) for r in rates], ensure_ascii=False, indent=2))
        return
    typer.echo(
        f"{'group':<40} {'shown':>6} {'viewed':>6} {'eligible':>8} {'recog.':>7} {'rate':>7}"
        "  reasons"
    )
    for r in rates:
        group = " ".join(str(v) for k, v in r.as_dict(groups).items() if k in groups)
        shown = "-" if r.rate is None else f"{r.rate:.1%}"
        reasons = ", ".join(f"{k} {n}" for k, n in sorted(r.reasons.items()))
        typer.echo(
            f"{group:<40} {r.shown:>6} {r.viewed:>6} {r.eligible:>8} "
            f"{r.recognised:>7} {shown:>7}  {reasons}"
        )
    eligible = sum(r.eligible for r in rates)
    recognised = sum(r.recognised for r in rates)
    total = f"{recognised / eligible:.1%}" if eligible else "-"
    saved = [r.saved for r in rates if r.priced]
    cost = f", {yuan(sum(saved, Decimal(0)))} yuan of tests avoided" if saved else ""
    typer.echo(f"{month}: {recognised} of {eligible} recognised ({total}){cost}")


@app.command()
def corrections(
    facility: Annotated[str | None, typer.Option("--facility", "-f")] = None,
    since: Annotated[str | None, typer.Option(help="Decisions from this date (ISO)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line")] = False,
) -> None:
    """Recognised results their lab changed afterwards (corrected, amended, withdrawn): the
    decisions to review. Exit 1 when there are any."""
    from adapter.recognition.corrections import changed_after_recognition

    moment = common.since_option(since)
    runtime = _open()
    try:
        _catalogue(runtime)
        with runtime.factory() as session:
            found = changed_after_recognition(session, facility_id=facility, since=moment)
    finally:
        runtime.close()
    for entry in found:
        if as_json:
            typer.echo(json.dumps(entry.as_dict(), ensure_ascii=False))
        else:
            typer.echo(
                f"{entry.recognised_at:%Y-%m-%d %H:%M}  {entry.facility_id}  {entry.doctor}  "
                f"order {entry.order_id}  {entry.item_code}  {entry.prior} is now "
                f"{entry.status or '?'} (version {entry.version}, "
                f"{entry.changed_at:%Y-%m-%d %H:%M})"
            )
    if not as_json:
        typer.echo(f"{len(found)} recognised results changed afterwards")
    if found:
        raise typer.Exit(1)


@app.command()
def consent(
    patient: Annotated[str, typer.Argument(help="Patient id (any record of the person)")],
    facility: Annotated[str, typer.Option("--facility", "-f", help="The facility allowed")],
    until: Annotated[str, typer.Option(help="Until when (ISO, with zone; exclusive)")],
    start: Annotated[
        str | None, typer.Option("--from", help="From when (ISO, with zone); default now")
    ] = None,
    by: Annotated[str | None, typer.Option(help="Who took it (staff number 工号)")] = None,
) -> None:
    """Record the person's consent that FACILITY be shown their results for 互认 (a FHIR
    Consent): its $recognisable answers them without a care relationship, until --until."""
    from adapter.errors import AdapterError
    from adapter.recognition.consent import ConsentInput, record_consent

    end = _time(until, "--until")
    begin = _time(start, "--from") if start else None
    runtime = _open()
    try:
        _catalogue(runtime)
        try:
            with runtime.factory.begin() as session:
                stored, created = record_consent(
                    session,
                    runtime.consortium,
                    ConsentInput(patient, facility, end=end, start=begin, by=by),
                    now=datetime.now(UTC),
                    actor="cli",
                )
        except AdapterError as exc:
            raise common.fail(exc.message, code=1) from None
    finally:
        runtime.close()
    period = stored["provision"]["period"]
    said = "recorded" if created else "already recorded (nothing stored)"
    typer.echo(
        f"{said}: Consent/{stored['id']} for {facility}, {period['start']} until {period['end']}"
    )


@app.command("revoke-consent")
def revoke_consent_command(
    consent_id: Annotated[str, typer.Argument(help="The Consent's id")],
    by: Annotated[str | None, typer.Option(help="Who recorded the withdrawal")] = None,
) -> None:
    """The person withdrew a consent: a new version of it, status inactive."""
    from adapter.errors import AdapterError
    from adapter.recognition.consent import revoke_consent

    runtime = _open()
    try:
        _catalogue(runtime)
        try:
            with runtime.factory.begin() as session:
                stored, changed = revoke_consent(
                    session, consent_id, now=datetime.now(UTC), actor="cli", by=by
                )
        except AdapterError as exc:
            raise common.fail(exc.message, code=1) from None
    finally:
        runtime.close()
    what = "revoked" if changed else f"already {stored.get('status')}"
    typer.echo(f"{what}: Consent/{consent_id} version {stored['meta']['versionId']}")


@app.command()
def mark(
    since: Annotated[
        str | None, typer.Option(help="Only results stored since this date or time (ISO)")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would change; store nothing")
    ] = False,
    batch: Annotated[int, typer.Option(min=1, max=10000, help="Results per transaction")] = 500,
) -> None:
    """Give the stored results the mark the catalogue gives them now (results stored before
    it was configured, or under another edition): each whose mark changes is stored as a new
    version and delivered like any change. Progress on stderr; a second run changes nothing."""
    from adapter.recognition.remark import MarkRun, mark_stored

    moment = common.since_option(since)
    runtime = _open()

    def progress(rtype: str, run: MarkRun) -> None:
        typer.echo(
            f"{rtype}: {run.examined} examined, {run.marked} marked, {run.unmarked} unmarked",
            err=True,
        )

    try:
        catalogue = _catalogue(runtime)
        if not catalogue.mark_results:
            raise common.fail(
                "the catalogue says mark_results: false: stored results are not marked", code=1
            )
        run = mark_stored(
            runtime.factory,
            catalogue,
            runtime.consortium,
            now=datetime.now(UTC),
            since=moment,
            dry_run=dry_run,
            batch=batch,
            progress=progress,
        )
    finally:
        runtime.close()
    verb = "would change" if dry_run else "changed"
    typer.echo(
        f"{run.examined} results examined; {verb} {run.changed} "
        f"({run.marked} marked, {run.unmarked} unmarked)"
        + ("" if dry_run else f"; {run.queued} deliveries queued")
    )


def register(main: typer.Typer) -> None:
    main.add_typer(app, name="recognition")

"""The audit commands of ``adapter audit``: keygen, checkpoint, checkpoints, verify,
archive, purge, disclosures, grants (docs/audit.md).

They need the consortium file and the database, not the mappings. ``verify`` exits 1 and
names the first record changed, inserted or removed when the log does not hold.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from adapter.commands import common

if TYPE_CHECKING:
    from adapter.runtime import Runtime

group = typer.Typer(help="The audit log: verify, checkpoints, disclosure reports, grants.")


def _open() -> Runtime:
    return common.start(check_connectors=False, load_mappings=False, publish=False)


def _record(runtime: Runtime, action: str, outcome: str, **detail: str | int | None) -> None:
    from adapter import audit
    from adapter.audit.context import Caller, serving
    from adapter.audit.writer import record_now

    with serving(Caller(client=None, channel="cli")):
        record_now(
            runtime.factory,
            audit.AuditEvent(
                action=action,  # type: ignore[arg-type]
                outcome=outcome,  # type: ignore[arg-type]
                actor="cli",
                subject=None,
                correlation_id=None,
                at=datetime.now(UTC),
                detail=detail,
            ),
        )


@group.command()
def keygen(
    path: Annotated[Path, typer.Argument(help="Where to write the new private key (PEM)")],
) -> None:
    """Make a new Ed25519 key for signing checkpoints and archives; prints its public key."""
    from adapter.audit.signing import key_id, new_key, public_pem

    try:
        key = new_key(path)
    except FileExistsError:
        raise common.fail(f"{path} exists: a key is never overwritten") from None
    typer.echo(f"key {key_id(key.public_key())} written to {path} (mode 0600)")
    typer.echo(public_pem(key.public_key()), nl=False)


def _signing_key(runtime: Runtime):  # type: ignore[no-untyped-def]
    from adapter.audit.signing import load_private

    path = runtime.settings.audit_signing_key
    if path is None:
        raise common.fail("set ADAPTER_AUDIT_SIGNING_KEY (adapter audit keygen makes one)")
    try:
        return load_private(path)
    except Exception as exc:  # ConfigError: a clear line, not a traceback
        raise common.fail(str(getattr(exc, "message", exc))) from None


def _public_key(runtime: Runtime):  # type: ignore[no-untyped-def]
    from adapter.audit.signing import load_public

    path = runtime.settings.audit_public_key or runtime.settings.audit_signing_key
    return None if path is None else load_public(path)


@group.command()
def checkpoint() -> None:
    """Sign the log's current head now (adapter serve also does it periodically)."""
    from adapter.audit.checkpoints import make_checkpoint

    runtime = _open()
    try:
        key = _signing_key(runtime)
        with runtime.factory.begin() as session:
            made = make_checkpoint(session, key, now=datetime.now(UTC))
        if made is None:
            typer.echo("nothing new to sign")
        else:
            typer.echo(f"checkpoint: {made.seq} records, head {made.hash}, key {made.key_id}")
    finally:
        runtime.close()


@group.command()
def checkpoints(
    export: Annotated[
        Path | None, typer.Option(help="Write them as NDJSON to keep elsewhere")
    ] = None,
) -> None:
    """List the signed checkpoints, or export them (one JSON object per line)."""
    import orjson

    from adapter.audit.checkpoints import stored_checkpoints

    runtime = _open()
    try:
        with runtime.factory() as session:
            found = stored_checkpoints(session)
    finally:
        runtime.close()
    lines = [orjson.dumps({"statement": s, "signature": g}).decode() for s, g in found]
    if export is not None:
        export.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        typer.echo(f"{len(lines)} checkpoints written to {export}")
    else:
        for statement, _ in found:
            typer.echo(statement)


@group.command()
def verify(
    checkpoints_file: Annotated[
        Path | None,
        typer.Option("--checkpoints", help="Checkpoints exported earlier (NDJSON), also checked"),
    ] = None,
    archives: Annotated[
        Path | None,
        typer.Option("--archive", help="Folder of archives (adapter audit archive), also checked"),
    ] = None,
) -> None:
    """Walk the audit log; name the first record changed, inserted or removed (exit 1)."""
    from adapter.audit.archive import check_archives
    from adapter.audit.checkpoints import read_exported
    from adapter.audit.verify import Report
    from adapter.audit.verify import verify as walk

    runtime = _open()
    try:
        public = _public_key(runtime)
        external = (
            read_exported(checkpoints_file.read_text(encoding="utf-8").splitlines())
            if checkpoints_file is not None
            else []
        )
        start = None
        archived = Report()
        if archives is not None:
            good = check_archives(archives, public, archived)
            for finding in archived.findings:
                typer.secho(f"archive: {finding}", fg=typer.colors.RED)
            typer.echo(f"{archived.records} archived records in {len(good)} archives")
            if good:
                start = (good[-1].last, good[-1].last_hash)
        with runtime.factory() as session:
            report = walk(session, public=public, external=external, start=start)
        report.findings[:0] = archived.findings
        if public is None:
            typer.echo("no public key (ADAPTER_AUDIT_PUBLIC_KEY): checkpoints not checked")
        for finding in report.findings:
            typer.secho(str(finding), fg=typer.colors.RED)
        typer.echo(
            f"{report.records} records ({report.first_seq or '-'}..{report.last_seq or '-'}), "
            f"{report.checkpoints} checkpoints: {'ok' if report.ok else 'NOT OK'}"
        )
        _record(
            runtime,
            "audit.verified",
            "success" if report.ok else "failure",
            records=report.records,
            first_problem=str(report.findings[0].seq) if report.findings else None,
        )
    finally:
        runtime.close()
    if not report.ok:
        raise typer.Exit(1)


@group.command()
def archive(
    out: Annotated[Path, typer.Option("--out", help="Folder of the archives")],
) -> None:
    """Write the records older than the retention (ADAPTER_AUDIT_RETENTION_DAYS) to a
    signed, compressed NDJSON archive in --out. Removes nothing (see purge)."""
    from datetime import timedelta

    from adapter.audit.archive import archive as write

    runtime = _open()
    try:
        key = _signing_key(runtime)
        now = datetime.now(UTC)
        older = now - timedelta(days=runtime.settings.audit_retention_days)
        with runtime.factory() as session:
            made = write(session, out, key, older_than=older, now=now)
        if made is None:
            typer.echo("nothing older than the retention to archive")
            return
        typer.echo(f"records {made.first}..{made.last} archived to {made.data}")
        _record(runtime, "audit.archived", "success", first=made.first, last=made.last)
    finally:
        runtime.close()


@group.command()
def purge(
    archives: Annotated[Path, typer.Option("--archive", help="Folder of the archives")],
) -> None:
    """Remove from the table the records older than the retention that the archives in
    --archive hold, after verifying them (run as the audit administrator's database role)."""
    from adapter.audit.archive import ArchiveError, check_archives
    from adapter.audit.archive import purge as remove
    from adapter.audit.verify import Report

    runtime = _open()
    try:
        report = Report()
        good = check_archives(archives, _public_key(runtime), report)
        if not report.ok:
            for finding in report.findings:
                typer.secho(f"archive: {finding}", fg=typer.colors.RED)
            raise common.fail("the archives do not verify: nothing purged", 1)
        try:
            with runtime.factory.begin() as session:
                count = remove(
                    session,
                    good,
                    retention_days=runtime.settings.audit_retention_days,
                    now=datetime.now(UTC),
                )
        except ArchiveError as exc:
            raise common.fail(exc.message, 1) from None
        typer.echo(f"{count} archived and verified records purged")
        _record(runtime, "audit.purged", "success", records=count)
    finally:
        runtime.close()


@group.command()
def disclosures(
    patient: Annotated[str, typer.Option(help="Patient/<id> (or the id)")],
    since: Annotated[str | None, typer.Option(help="From this time (ISO)")] = None,
    every_action: Annotated[
        bool, typer.Option("--all", help="Every audited event about the patient")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line")] = False,
    record_only: Annotated[
        bool,
        typer.Option(
            "--record-only", help="Only this Patient record, not the person's other records"
        ),
    ] = False,
) -> None:
    """Who received or read this person's data, when and why (PIPL requests): the Patient
    record named and every record the patient index links to the same person."""
    import orjson

    from adapter.audit.disclosures import disclosures as report
    from adapter.audit.disclosures import person_references

    moment = common.since_option(since)
    runtime = _open()
    try:
        with runtime.factory() as session:
            records = [patient] if record_only else person_references(session, patient)
            found = report(session, records, since=moment, every_action=every_action)
        _record(runtime, "audit.read", "success", report="disclosures", entries=len(found))
    finally:
        runtime.close()
    for entry in found:
        if as_json:
            typer.echo(orjson.dumps(entry).decode())
        else:
            what = ", ".join(entry["resources"]) or f"{entry['results']} search results"
            typer.echo(
                f"{entry['when']}  {entry['action']:18} {entry['outcome']:8} "
                f"to {entry['to']}  ({entry['why']})  {what}"
            )
    if not as_json:
        typer.echo(f"{len(found)} disclosures")


@group.command()
def grants(
    role: Annotated[str, typer.Option(help="The service's database role")],
    schema: Annotated[str, typer.Option(help="The adapter's schema")] = "public",
    audit_admin: Annotated[
        str | None, typer.Option(help="The audit administrator's role (purges archives)")
    ] = None,
) -> None:
    """Print the PostgreSQL grants that make the audit log append-only for ``role``."""
    from adapter.audit.grants import audit_admin_grants, service_grants

    for statement in service_grants(role, schema):
        typer.echo(statement + ";")
    if audit_admin:
        for statement in audit_admin_grants(audit_admin, schema):
            typer.echo(statement + ";")


def register(app: typer.Typer) -> None:
    app.add_typer(group, name="audit")

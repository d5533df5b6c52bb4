"""The ``adapter`` command: serve, ingest, inspect and reprocess messages, check mappings."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import Annotated

import typer

from adapter.errors import AdapterError, MappingDefinitionError
from adapter.input_limits import InputLimits
from adapter.settings import Settings, get_settings

app = typer.Typer(
    help="HL7 FHIR R4 adapter for county medical consortia (医共体).",
    no_args_is_help=True,
    add_completion=False,
)
mappings_app = typer.Typer(
    help="Check mapping folders and run their golden cases.", no_args_is_help=True
)
app.add_typer(mappings_app, name="mappings")


def _cannot_start(reason: str) -> typer.Exit:
    typer.secho(f"cannot start: {reason}", fg=typer.colors.RED, err=True)
    return typer.Exit(2)


def _settings() -> Settings:
    from pydantic import ValidationError

    try:
        return get_settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        name = "ADAPTER_" + "_".join(str(p) for p in first["loc"]).upper()
        raise _cannot_start(f"{name}: {first['msg']}") from None


def _runtime():
    from sqlalchemy.exc import SQLAlchemyError

    from adapter.runtime import build_runtime

    settings = _settings()
    try:
        return build_runtime(settings)
    except AdapterError as exc:
        raise _cannot_start(exc.message) from None
    except SQLAlchemyError as exc:
        raise _cannot_start(
            f"the database {_safe_url(settings.database_url)} cannot be used ({type(exc).__name__})"
        ) from None


def _database():
    """The message store only (consortium file checked, mappings not loaded): listing and
    showing messages must work while a broken mapping is being fixed."""
    from sqlalchemy.exc import SQLAlchemyError

    from adapter.consortium import load_consortium
    from adapter.store import make_engine, migrate, session_factory

    settings = _settings()
    try:
        load_consortium(settings.config)
        engine = make_engine(settings.database_url)
        migrate(engine)
    except AdapterError as exc:
        raise _cannot_start(exc.message) from None
    except SQLAlchemyError as exc:
        raise _cannot_start(
            f"the database {_safe_url(settings.database_url)} cannot be used ({type(exc).__name__})"
        ) from None
    return engine, session_factory(engine)


def _safe_url(url: str) -> str:
    """The database URL without its password (it is printed)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:  # an unparsable URL fails later with its own error
        return "(unreadable database URL)"


def _print_result(name: str, result) -> None:
    counts = Counter(ref.split("/", 1)[0] for ref in result.resources)
    produced = ", ".join(f"{n} {t}" for t, n in sorted(counts.items())) or "nothing"
    colour = typer.colors.GREEN if result.accepted else typer.colors.RED
    note = " (already received)" if result.duplicate else ""
    typer.secho(f"{name}: {result.status}{note} -> {produced}", fg=colour)
    typer.echo(f"  message {result.message_id}")
    for issue in result.issues:
        if issue.severity == "information":
            continue
        where = f" at {issue.location}" if issue.location else ""
        typer.echo(f"  {issue.severity}{where}: {issue.diagnostics}")
    quiet = sum(1 for i in result.issues if i.severity == "information")
    if quiet:
        typer.echo(f"  ({quiet} informational notes: adapter show {result.message_id})")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8080,
) -> None:
    """Run the HTTP API (ingest, messages, FHIR) with uvicorn."""
    from sqlalchemy.exc import SQLAlchemyError

    from adapter.api.app import create_app
    from adapter.api.server import run
    from adapter.logs import configure_logging

    settings = _settings()
    try:
        configure_logging(settings.log_level, json=settings.log_json)
        application = create_app(settings)
    except AdapterError as exc:
        raise _cannot_start(exc.message) from None
    except SQLAlchemyError as exc:
        raise _cannot_start(
            f"the database {_safe_url(settings.database_url)} cannot be used ({type(exc).__name__})"
        ) from None
    run(application, settings, host=host, port=port)


@app.command()
def ingest(
    files: Annotated[list[Path], typer.Argument(exists=True, dir_okay=False)],
    source: Annotated[
        str, typer.Option("--source", "-s", help="Source system id (consortium file)")
    ],
    content_type: Annotated[str | None, typer.Option(help="Content type to record")] = None,
) -> None:
    """Ingest files from one source system; exit 1 if any was quarantined."""
    runtime = _runtime()
    failed = 0
    try:
        for path in files:
            try:
                result = _ingest_file(runtime.pipeline, path, source, content_type)
            except AdapterError as exc:
                typer.secho(f"{path}: {exc.message}", fg=typer.colors.RED)
                failed += 1
                continue
            _print_result(str(path), result)
            failed += 0 if result.accepted else 1
    finally:
        runtime.close()
    raise typer.Exit(1 if failed else 0)


def _ingest_file(pipeline, path: Path, source: str, content_type: str | None):
    """A file over ADAPTER_MAX_MESSAGE_BYTES is not read whole: its first bytes are kept."""
    from adapter.oversize import Oversize

    with path.open("rb") as handle:
        size = path.stat().st_size
        if size > pipeline.max_bytes:
            prefix = handle.read(pipeline.keep_bytes)
            return pipeline.refuse_oversize(Oversize(prefix, size), source, content_type)
        return pipeline.ingest(handle.read(), source, content_type)


@app.command()
def messages(
    status: Annotated[str | None, typer.Option(help="Only this status")] = None,
    limit: Annotated[int, typer.Option(min=1)] = 50,
) -> None:
    """List received messages, newest first."""
    from adapter.pipeline import STATUSES
    from adapter.store import list_messages

    if status is not None and status not in STATUSES:
        typer.secho(f"--status must be one of {', '.join(STATUSES)}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
    engine, factory = _database()
    try:
        with factory() as session:
            rows = list_messages(session, status, limit)
            typer.echo(
                f"{'message':36}  {'received (UTC)':19}  {'source':14}  "
                f"{'status':24}  resources  issues"
            )
            for m in rows:
                typer.echo(
                    f"{m.id:36}  {m.received_at:%Y-%m-%d %H:%M:%S}  "
                    f"{m.source_system:14}  {m.status:24}  "
                    f"{len(m.resources or []):9}  {len(m.issues or []):6}"
                )
    finally:
        engine.dispose()


@app.command()
def show(message_id: str) -> None:
    """Show one message: status, every issue with its location, the resources it made."""
    from adapter.store import get_message

    engine, factory = _database()
    try:
        with factory() as session:
            m = get_message(session, message_id)
            if m is None:
                typer.secho(f"no message {message_id}", fg=typer.colors.RED, err=True)
                raise typer.Exit(1)
            typer.echo(f"message {m.id} from {m.source_system} ({m.facility_id})")
            typer.echo(
                f"received {m.received_at.isoformat()}, {m.size} bytes, "
                f"{m.detected_format}/{m.encoding}, status {m.status}"
            )
            for issue in m.issues or []:
                where = f" at {issue.get('location')}" if issue.get("location") else ""
                typer.echo(f"  {issue['severity']}{where}: {issue['diagnostics']}")
            for ref in m.resources or []:
                typer.echo(f"  -> {ref}")
    finally:
        engine.dispose()


@app.command()
def reprocess(
    message_id: Annotated[str | None, typer.Argument()] = None,
    status: Annotated[
        str | None, typer.Option(help="Reprocess every message with this status, e.g. quarantined")
    ] = None,
) -> None:
    """Translate stored messages again with the current mappings (after a mapping fix)."""
    from adapter.store import list_messages

    if bool(message_id) == bool(status):
        typer.secho("give a message id or --status", fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
    runtime = _runtime()
    failed = 0
    try:
        if message_id:
            ids = [message_id]
        else:
            with runtime.factory() as session:
                ids = [m.id for m in list_messages(session, status, limit=1_000_000)]
        for mid in ids:
            try:
                result = runtime.pipeline.reprocess(mid)
            except AdapterError as exc:
                typer.secho(f"{mid}: {exc.message}", fg=typer.colors.RED)
                failed += 1
                continue
            _print_result(mid, result)
            failed += 0 if result.accepted else 1
        typer.echo(f"{len(ids)} reprocessed, {failed} still failing")
    finally:
        runtime.close()
    raise typer.Exit(1 if failed else 0)


@app.command()
def demo(
    folder: Annotated[
        Path | None, typer.Option(help="Folder whose sub-folders are named after source systems")
    ] = None,
) -> None:
    """Ingest the example consortium's sample messages and print what each produced."""
    settings = _settings()
    root = folder or settings.config.parent / "hl7v2" / "oru"
    runtime = _runtime()  # a bad consortium file is reported first
    if not root.is_dir():
        runtime.close()
        typer.secho(f"{root} is not a folder", fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
    known = {s.id for f in runtime.consortium.facilities for s in f.sources}
    totals: Counter[str] = Counter()
    typer.echo(f"database: {_safe_url(settings.database_url)}")
    try:
        for source_dir in sorted(p for p in root.iterdir() if p.is_dir() and p.name in known):
            for path in sorted(source_dir.glob("*.hl7")):
                result = runtime.pipeline.ingest(path.read_bytes(), source_dir.name)
                _print_result(f"{source_dir.name}/{path.name}", result)
                totals[result.status] += 1
    finally:
        runtime.close()
    summary = ", ".join(f"{n} {s}" for s, n in sorted(totals.items()))
    typer.echo(f"\n{sum(totals.values())} messages: {summary}")
    typer.echo("Read them back: adapter serve, then GET http://127.0.0.1:8080/fhir/Patient")


@mappings_app.command("check")
def mappings_check(
    directory: Annotated[
        Path | None, typer.Argument(help="Mapping root (default: ADAPTER_MAPPINGS_DIR)")
    ] = None,
) -> None:
    """Check every mapping folder (schema, expressions, references, code tables)."""
    from adapter.mapping.loader import SHARED, load_mapping_set

    root = directory or _settings().mappings_dir
    folders = [
        SHARED,
        *sorted(
            p.name for p in root.iterdir() if p.is_dir() and p.name not in (SHARED, "facilities")
        ),
    ]
    facilities = (
        sorted(f"facilities/{p.name}" for p in (root / "facilities").glob("*") if p.is_dir())
        if (root / "facilities").is_dir()
        else []
    )
    errors = 0
    for folder in folders:
        for overlay in [None, *facilities]:
            label = folder + (f" + {overlay}" if overlay else "")
            try:
                mapping_set = load_mapping_set(root, folder, overlays=(overlay,) if overlay else ())
            except MappingDefinitionError as exc:
                typer.secho(f"{label}: {exc.message}", fg=typer.colors.RED)
                errors += 1
                if overlay is None:
                    break  # every overlay of a broken folder fails the same way
                continue
            if overlay is None:
                typer.echo(f"{label}: {len(mapping_set.files)} files ok")
    raise typer.Exit(1 if errors else 0)


def _relative(path: Path) -> Path:
    """The path from the working folder when it is below it (shorter to read), else as is."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        return path


_MAX_DIFF_LINES = 40  # per case: a wrong shared rule can change every field of every case


@mappings_app.command("test")
def mappings_test(
    directory: Annotated[
        Path | None,
        typer.Argument(
            help="Fixtures folder; every cases.yaml below it is run "
            "(default: the folder of ADAPTER_CONFIG)"
        ),
    ] = None,
    update: Annotated[
        bool, typer.Option("--update", help="Rewrite the golden files from the current output")
    ] = False,
    case: Annotated[
        str | None, typer.Option("--case", help="Only the cases whose path contains this text")
    ] = None,
) -> None:
    """Run the golden cases: translate each fixture (nothing is stored), compare with its
    .expected.json field by field. Exit 1 if any case fails."""
    from adapter.consortium import load_consortium
    from adapter.mapping.golden import find_cases, run_case
    from adapter.pipeline import Pipeline

    settings = _settings()
    root = directory or settings.config.parent
    if not root.is_dir():
        raise _cannot_start(f"{root} is not a folder")
    try:
        consortium = load_consortium(settings.config)
    except AdapterError as exc:
        raise _cannot_start(exc.message) from None
    cases, broken = find_cases(root)
    if not cases and not broken:
        raise _cannot_start(f"no cases.yaml below {root}")
    if case is not None:
        cases = [c for c in cases if case in c.label]
        broken = []
        if not cases:
            raise _cannot_start(f"no case path contains {case!r}")
    pipeline = Pipeline(
        consortium,
        None,  # type: ignore[arg-type]  # translate only
        mappings_dir=settings.mappings_dir,
        max_bytes=settings.max_message_bytes,
        default_timezone=settings.default_timezone,
        original_inline_max_bytes=settings.original_inline_max_bytes,
        limits=InputLimits.from_settings(settings),
    )
    for source_id in sorted({c.entry["source"] for c in cases}):
        found = consortium.source(source_id)
        if found is None:
            continue  # its cases fail, naming the source
        try:
            pipeline.mapping_set(*found)
        except MappingDefinitionError as exc:
            raise _cannot_start(
                f"{exc.message} (adapter mappings check lists every error)"
            ) from None
    if update:
        typer.secho(
            "--update: golden files that differ are REWRITTEN from the current output",
            fg=typer.colors.YELLOW,
            bold=True,
        )
    failed = len(broken)
    written: list[Path] = []
    for line in broken:
        typer.secho(f"FAIL  {line}", fg=typer.colors.RED)
    for item in cases:
        result = run_case(item, pipeline.translate, update=update)
        if result.written is not None:
            written.append(result.written)
        if result.ok:
            typer.secho(
                f"ok    {result.label}" + ("  (rewritten)" if result.written else ""),
                fg=typer.colors.GREEN,
            )
        else:
            failed += 1
            typer.secho(f"FAIL  {result.label}", fg=typer.colors.RED)
        for line in result.lines[:_MAX_DIFF_LINES]:
            typer.echo(f"      {line}")
        if len(result.lines) > _MAX_DIFF_LINES:
            typer.echo(f"      ... and {len(result.lines) - _MAX_DIFF_LINES} more")
    summary = f"{len(cases) + len(broken) - failed} passed, {failed} failed"
    if update:
        typer.secho(
            f"\nGOLDEN FILES REWRITTEN: {len(written)}; read `git diff` before "
            "committing: a golden file is a claim about what is right",
            fg=typer.colors.YELLOW,
            bold=True,
        )
        for path in written:
            typer.echo(f"  {_relative(path)}")
    typer.echo(summary)
    raise typer.Exit(1 if failed else 0)


# the delivery commands (worker, deliveries, replay) live in adapter/delivery/commands.py
from adapter.delivery.commands import register as _register_delivery  # noqa: E402

_register_delivery(app)

# the connector commands (connectors check, listen, poll) live in adapter/connectors/commands.py
from adapter.connectors.commands import register as _register_connectors  # noqa: E402

_register_connectors(app)


def main() -> None:  # pragma: no cover - console entry point
    sys.exit(app())


if __name__ == "__main__":  # python -m adapter.cli (tests start the real server this way)
    app()

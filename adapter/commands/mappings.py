"""``adapter mappings check`` and ``adapter mappings test``: checking mapping folders and
running their golden cases. They translate only: nothing is stored, no database is opened.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from adapter.commands import common
from adapter.errors import AdapterError, MappingDefinitionError
from adapter.input_limits import InputLimits

mappings_app = typer.Typer(
    help="Check mapping folders and run their golden cases.", no_args_is_help=True
)


@mappings_app.command("check")
def mappings_check(
    directory: Annotated[
        Path | None, typer.Argument(help="Mapping root (default: ADAPTER_MAPPINGS_DIR)")
    ] = None,
) -> None:
    """Check every mapping folder (schema, expressions, references, code tables)."""
    from adapter.mapping.loader import SHARED, load_mapping_set

    root = directory or common.settings().mappings_dir
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
    from adapter.pipeline import Translator

    settings = common.settings()
    root = directory or settings.config.parent
    if not root.is_dir():
        raise common.cannot_start(f"{root} is not a folder")
    try:
        consortium = load_consortium(settings.config)
    except AdapterError as exc:
        raise common.cannot_start(exc.message) from None
    cases, broken = find_cases(root)
    if not cases and not broken:
        raise common.cannot_start(f"no cases.yaml below {root}")
    if case is not None:
        cases = [c for c in cases if case in c.label]
        broken = []
        if not cases:
            raise common.cannot_start(f"no case path contains {case!r}")
    translator = Translator(
        consortium,
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
            translator.mapping_set(*found)
        except MappingDefinitionError as exc:
            raise common.cannot_start(
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
        result = run_case(item, translator.translate, update=update)
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
    with_facts = sum(1 for item in cases if item.entry.get("expect"))
    if with_facts:
        # the facts' keys differ per folder and their checkers live with the project's tests
        typer.echo(
            f"\n{with_facts} of these cases also state hand-written facts (`expect:`); this "
            "command compares the golden files only. The facts are checked by the project's "
            "tests: .venv/bin/pytest tests/mappings"
        )
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


def register(app: typer.Typer) -> None:
    app.add_typer(mappings_app, name="mappings")

"""``adapter store compact``: compress the resource bodies stored before migration 0017.
``adapter store check-index``: compare the stored search index with the one the current
code derives from the stored resources (decision 0130); changes nothing.

New bodies are written compressed (decision 0049); older ones stay plain JSON, read as
they are, until this command rewrites them, one batch per transaction, beside a running
adapter. Optional: it only gives their space back (on PostgreSQL after VACUUM reuses it,
on SQLite after ``VACUUM``).
"""

from __future__ import annotations

from typing import Annotated

import typer

from adapter.commands import common

app = typer.Typer(help="The resource store: compact, check-index", no_args_is_help=True)


@app.command()
def compact(
    batch: Annotated[int, typer.Option(min=1, max=10_000, help="rows per transaction")] = 500,
) -> None:
    """Compress the resource bodies stored before migration 0017 (optional)."""
    from adapter.store.body_rewrite import TABLES, rewrite_in_transactions

    runtime = common.start(check_connectors=False, load_mappings=False, publish=False)
    try:
        for table in TABLES:
            done = rewrite_in_transactions(runtime.engine.begin, table, compress=True, batch=batch)
            typer.echo(f"{table}: {done} bodies compressed")
    finally:
        runtime.close()


@app.command("check-index")
def check_index(
    resource_type: Annotated[
        str | None, typer.Option("--type", help="Only this resource type, e.g. Observation")
    ] = None,
) -> None:
    """Check every current resource's search index rows against its body (read only; exit
    code 1 when some differ: `adapter reindex` writes them again)."""
    from adapter.store.index_check import check_index as check
    from adapter.store.index_check import describe

    runtime = common.start(check_connectors=False, publish=False)
    try:
        with runtime.factory() as session:
            try:
                found = check(session, runtime.pipeline.timezone, resource_type)
            finally:
                session.rollback()
        for line in describe(found):
            typer.echo(line)
    finally:
        runtime.close()
    if not found.ok:
        raise typer.Exit(1)


def register(main: typer.Typer) -> None:
    main.add_typer(app, name="store")

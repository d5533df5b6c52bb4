"""``adapter store compact``: compress the resource bodies stored before migration 0017.

New bodies are written compressed (decision 0049); older ones stay plain JSON, read as
they are, until this command rewrites them, one batch per transaction, beside a running
adapter. Optional: it only gives their space back (on PostgreSQL after VACUUM reuses it,
on SQLite after ``VACUUM``).
"""

from __future__ import annotations

from typing import Annotated

import typer

from adapter.commands import common

app = typer.Typer(help="The resource store: compact", no_args_is_help=True)


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


def register(main: typer.Typer) -> None:
    main.add_typer(app, name="store")

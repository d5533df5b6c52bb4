"""``adapter reindex``: rebuild the search index rows from the stored resources.

Needed once after an upgrade that indexes more (new search parameters, or values a
parameter did not see before): rows of resources written earlier are rebuilt from their
stored bodies, in the consortium's time zone, the way new writes make them.
"""

from __future__ import annotations

from typing import Annotated

import typer

from adapter.commands import common


def reindex(
    resource_type: Annotated[
        str | None, typer.Option("--type", help="Only this resource type, e.g. Observation")
    ] = None,
) -> None:
    """Rebuild the search index from the stored resources (after an upgrade)."""
    from adapter.store import reindex as rebuild

    runtime = common.start(check_connectors=False, publish=False)
    try:
        with runtime.factory.begin() as session:
            done = rebuild(session, resource_type, zone=runtime.pipeline.timezone)
        typer.echo(f"reindexed {done} resources")
    finally:
        runtime.close()


def register(app: typer.Typer) -> None:
    app.command()(reindex)

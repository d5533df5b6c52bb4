"""``adapter remap --source S [--from T] [--to T] [--dry-run]``: translate stored messages
again with the current mappings; show per resource what would change, summarised by
mapping rule and path; without ``--dry-run`` store the changes as new versions (they are
then delivered like any change). docs/remap.md.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated

import typer

from adapter.commands import common
from adapter.errors import AdapterError


def _moment(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise common.fail(f"{option} {value!r}: give an ISO date or time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def remap(
    source: Annotated[str, typer.Option("--source", "-s", help="Source system id")],
    since: Annotated[
        str | None, typer.Option("--from", help="Messages received from (ISO date/time)")
    ] = None,
    until: Annotated[
        str | None, typer.Option("--to", help="... up to, not including (ISO date/time)")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only show what would change")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="The plan as JSON")] = False,
    shown: Annotated[int, typer.Option("--show", min=0, help="Resources listed in full")] = 20,
) -> None:
    """Re-translate stored messages of a source with the current mappings (diff first)."""
    from adapter.remap.plan import apply_remap, plan_remap
    from adapter.runtime import make_pipeline

    first, last = _moment(since, "--from"), _moment(until, "--to")
    runtime = common.start(load_mappings=False, publish=False)
    try:
        try:
            pipeline = make_pipeline(
                runtime.settings,
                runtime.consortium,
                runtime.factory,
                only_sources=[source],
                recognition=runtime.recognition,
            )
            plan = plan_remap(pipeline, runtime.factory, source, first, last)
            results = [] if dry_run else apply_remap(pipeline, plan)
        except AdapterError as exc:
            raise common.fail(f"remap: {exc.message}") from None
    finally:
        runtime.close()
    report = plan.as_dict()
    report["applied"] = not dry_run
    report["stored"] = [r.message_id for r in results]
    if as_json:
        typer.echo(json.dumps(report, ensure_ascii=False, indent=2))
        return
    typer.echo(
        f"{source}: {report['messages']} messages, {report['messages_changed']} with changes "
        f"({report['resources_changed']} resources), {report['messages_failing']} would be "
        f"quarantined, {report['skipped_quarantined']} quarantined skipped"
    )
    if report["summary"]:
        typer.echo("by mapping rule and path:")
        for row in report["summary"]:
            typer.echo(
                f"  {row['resources']:6}  {row['change']:12}  {row['path']}  [{row['rule']}]"
            )
    for change in report["changes"][:shown]:
        parts = [
            f"{k} {', '.join(change[k])}" for k in ("added", "removed", "changed") if change[k]
        ]
        typer.echo(f"  {change['resource']} ({change['kind']}): {'; '.join(parts) or 'new'}")
    if len(report["changes"]) > shown:
        typer.echo(f"  ... {len(report['changes']) - shown} more (--json lists all)")
    if dry_run:
        typer.echo("dry run: nothing stored")
    else:
        typer.echo(f"stored: {len(results)} messages reprocessed; changed resources queued")


def register(app: typer.Typer) -> None:
    app.command()(remap)

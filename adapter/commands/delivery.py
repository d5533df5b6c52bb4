"""The delivery commands of ``adapter``: ``worker``, ``deliveries``, ``replay``, ``pause``,
``resume``, ``prune``.

Registered on the main typer app by :func:`register` (adapter/cli.py). They need the
consortium file and the database, not the mappings (commands.common.start without them).
"""

from __future__ import annotations

import logging
import signal
import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from adapter import audit
from adapter.audit.context import Caller, serving
from adapter.commands import common
from adapter.errors import AdapterError

if TYPE_CHECKING:
    from adapter.runtime import Runtime

log = logging.getLogger(__name__)


def _open(*, logs: bool = False) -> Runtime:
    """The consortium file and the database (migrated): neither the mappings nor the other
    connectors are needed to deliver or to inspect deliveries. Only the long-running worker
    sets up logging; the inspecting commands print and stay quiet."""
    return common.start(logs=logs, check_connectors=False, load_mappings=False, publish=False)


def _parse_time(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise common.fail(
            f"--since {value!r}: give an ISO date or time, e.g. 2026-03-01T08:00+08:00"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def worker(
    once: Annotated[
        bool, typer.Option("--once", help="Deliver what is due now, then exit (cron, tests)")
    ] = False,
    destination: Annotated[
        list[str] | None,
        typer.Option("--destination", "-d", help="Only this destination (repeatable)"),
    ] = None,
    batch: Annotated[int, typer.Option(min=1, max=1000, help="Rows per claim")] = 20,
    lease_seconds: Annotated[
        float,
        typer.Option(min=1.0, help="How long a claimed row stays this worker's without an answer"),
    ] = 120.0,
    poll_seconds: Annotated[float, typer.Option(min=0.05, help="Wait when nothing is due")] = 1.0,
) -> None:
    """Deliver the outbox: claim due rows, send them, retry, dead-letter.

    Several workers (processes, hosts) may share a PostgreSQL database; on SQLite one runs.
    """
    from adapter.delivery.retention import start_periodic
    from adapter.delivery.service import build_worker, start_exclusive
    from adapter.delivery.worker import WorkerOptions

    runtime = _open(logs=True)
    consortium, engine, factory = runtime.consortium, runtime.engine, runtime.factory
    from adapter.runtime import record_config_loaded

    record_config_loaded(runtime, "worker")
    options = WorkerOptions(
        batch_size=batch, lease_seconds=lease_seconds, poll_seconds=poll_seconds
    )
    try:
        lock = start_exclusive(engine, factory)
        try:
            delivery = build_worker(consortium, factory, only=destination, options=options)
        except AdapterError:
            lock.release()
            raise
    except AdapterError as exc:
        engine.dispose()
        raise common.fail(f"cannot start: {exc.message}") from None
    if not delivery.destinations:
        typer.echo("no enabled destination in the consortium file: nothing to deliver")
    try:
        if once:
            reports = delivery.drain()
            delivered = sum(r.tally.delivered for r in reports)
            retried = sum(r.tally.retried for r in reports)
            dead = sum(r.tally.dead for r in reports)
            typer.echo(
                f"{sum(r.claimed for r in reports)} sent: {delivered} delivered, "
                f"{retried} to retry, {dead} dead"
            )
            return
        stop = threading.Event()

        def _stop(signum: int, _frame: object) -> None:
            log.info("signal %d: finishing the current batches", signum)
            stop.set()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        log.info("delivery worker %s for %s", delivery.worker_id, ", ".join(delivery.destinations))
        # the outbox retention (decision 0064): one process among the workers prunes
        pruning = start_periodic(factory, runtime.settings, holder=delivery.worker_id)
        try:
            delivery.run(stop)
        finally:
            if pruning is not None:
                pruning.stop()
    finally:
        delivery.close()
        lock.release()
        engine.dispose()


def deliveries(
    delivery_id: Annotated[
        int | None, typer.Argument(help="Show this delivery with every attempt")
    ] = None,
    state: Annotated[str | None, typer.Option(help="pending, in-flight, delivered or dead")] = None,
    destination: Annotated[str | None, typer.Option("--destination", "-d")] = None,
    limit: Annotated[int, typer.Option(min=1)] = 50,
) -> None:
    """List deliveries (newest first), or show one with its attempts."""
    from adapter.store import outbox, read_only

    runtime = _open()
    try:
        with runtime.factory() as session:
            read_only(session)
            if delivery_id is not None:
                row = outbox.get_delivery(session, delivery_id)
                _show(row, outbox.attempts_of(session, delivery_id))
                return
            total, rows = outbox.list_deliveries(
                session, state=state, destination=destination, limit=limit
            )
            typer.echo(
                f"{'id':>8}  {'destination':20}  {'resource':40}  {'v':>3}  "
                f"{'state':9}  {'tries':>5}  {'status':6}  error"
            )
            for r in rows:
                resource = f"{r.resource_type}/{r.resource_id}"
                error = (r.last_error or "").replace("\n", " ")[:60]
                typer.echo(
                    f"{r.id:>8}  {r.destination:20}  {resource:40}  {r.version_id:>3}  "
                    f"{r.state:9}  {r.attempts:>5}  {r.last_status or '':6}  {error}"
                )
            typer.echo(f"{len(rows)} of {total}")
    except AdapterError as exc:
        raise common.fail(exc.message, 1) from None
    finally:
        runtime.close()


def _show(row: Any, attempts: list[Any]) -> None:
    typer.echo(
        f"delivery {row.id}: {row.resource_type}/{row.resource_id} version "
        f"{row.version_id} -> {row.destination}"
    )
    typer.echo(f"  state {row.state}, {row.attempts} attempts, queued {row.created_at.isoformat()}")
    if row.reason:
        typer.echo(f"  why: {row.reason}")
    if row.sequence is not None:
        typer.echo(f"  sequence number {row.sequence} (of {row.destination})")
    if row.state == "pending":
        typer.echo(f"  next attempt {row.next_attempt_at.isoformat()}")
    if row.delivered_at:
        typer.echo(f"  delivered {row.delivered_at.isoformat()} (version {row.sent_version_id})")
    if row.last_error:
        typer.echo(f"  last error: {row.last_error}")
    for a in attempts:
        typer.echo(
            f"  {a.attempted_at.isoformat()}  {a.outcome:9}  {a.status or '-':6}  "
            f"{a.duration_ms:8.1f} ms  {a.worker or ''}  {a.error or ''}"
        )


def replay(
    delivery_id: Annotated[int | None, typer.Argument(help="The delivery to send again")] = None,
    destination: Annotated[
        str | None,
        typer.Option("--destination", "-d", help="Every dead letter of this destination"),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(help="Only those whose last attempt was at or after this time (ISO)"),
    ] = None,
    state: Annotated[
        str, typer.Option(help="dead, or delivered to send delivered ones again")
    ] = "dead",
) -> None:
    """Send dead letters again (the resource's current version): one, or a destination's."""
    from adapter.store import outbox

    if (delivery_id is None) == (destination is None):
        raise common.fail("give a delivery id or --destination")
    moment = _parse_time(since)
    runtime = _open()
    now = datetime.now(UTC)
    try:
        with serving(Caller(client=None, channel="cli")), runtime.factory.begin() as session:
            if delivery_id is not None:
                row = outbox.replay_one(session, delivery_id, now=now)
                audit.record(
                    audit.replay_event(
                        actor="cli",
                        at=now,
                        destination=row.destination,
                        count=1,
                        delivery_id=row.id,
                        entity=f"{row.resource_type}/{row.resource_id}",
                        message_id=row.message_id,
                    ),
                    session=session,
                )
                typer.echo(
                    f"delivery {row.id} queued again ({row.resource_type}/"
                    f"{row.resource_id} -> {row.destination})"
                )
            else:
                assert destination is not None
                count = outbox.replay_many(
                    session, destination=destination, since=moment, state=state, now=now
                )
                audit.record(
                    audit.replay_event(
                        actor="cli", at=now, destination=destination, count=count, state=state
                    ),
                    session=session,
                )
                typer.echo(f"{count} deliveries to {destination} queued again")
    except AdapterError as exc:
        raise common.fail(exc.message, 1) from None
    finally:
        runtime.close()


def prune(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would be deleted; delete nothing")
    ] = False,
    days: Annotated[
        int | None,
        typer.Option(
            min=1, help="Delivered more than this many days ago (default: the retention setting)"
        ),
    ] = None,
    batch: Annotated[
        int | None,
        typer.Option(min=1, max=100_000, help="Rows per transaction (default: the setting)"),
    ] = None,
) -> None:
    """Delete delivered outbox rows (and their attempts) older than the retention.

    Pending, in-flight and dead rows stay. The delivery worker does this every
    ADAPTER_OUTBOX_PRUNE_MINUTES by itself; this runs it once (docs/operations.md).
    """
    from adapter.delivery.retention import cutoff_for
    from adapter.delivery.retention import prune as prune_outbox
    from adapter.store import outbox, read_only

    runtime = _open()
    settings = runtime.settings
    try:
        keep = days if days is not None else settings.outbox_retention_days
        if keep <= 0:
            typer.echo(
                "the outbox retention is off (ADAPTER_OUTBOX_RETENTION_DAYS=keep): nothing "
                "pruned; give --days to prune once"
            )
            return
        cutoff = cutoff_for(keep, datetime.now(UTC))
        if dry_run:
            with runtime.factory() as session:
                read_only(session)
                found = outbox.count_prunable(session, cutoff)
            typer.echo(
                f"would delete {found.rows} delivered rows and {found.attempts} attempts "
                f"delivered before {cutoff.isoformat()} ({keep} days)"
            )
            return
        with serving(Caller(client=None, channel="cli")):
            done = prune_outbox(
                runtime.factory, cutoff=cutoff, batch=batch or settings.outbox_prune_batch
            )
        typer.echo(
            f"deleted {done.rows} delivered rows and {done.attempts} attempts delivered before "
            f"{cutoff.isoformat()} ({keep} days) in {done.batches} batches, "
            f"{done.rows_per_second:.0f} rows/s"
        )
    finally:
        runtime.close()


def _set_paused(destination: str, paused: bool) -> None:
    from adapter.audit.events import AuditEvent
    from adapter.store import outbox

    runtime = _open()
    now = datetime.now(UTC)
    try:
        known = {d.id for _, d in runtime.consortium.destinations()}
        if destination not in known:
            raise common.fail(f"no destination {destination} in the consortium file", 1)
        with serving(Caller(client=None, channel="cli")), runtime.factory.begin() as session:
            outbox.set_paused(session, destination, paused=paused, by="cli", now=now)
            audit.record(
                AuditEvent(
                    action="delivery.paused" if paused else "delivery.resumed",
                    outcome="success",
                    actor="cli",
                    subject=None,
                    correlation_id=None,
                    at=now,
                    detail={"destination": destination},
                ),
                session=session,
            )
    finally:
        runtime.close()
    typer.echo(f"{destination} {'paused: nothing is sent to it' if paused else 'resumed'}")


def pause(destination: Annotated[str, typer.Argument(help="The destination to pause")]) -> None:
    """Send a destination nothing until resumed (its deliveries wait without using tries)."""
    _set_paused(destination, True)


def resume(destination: Annotated[str, typer.Argument(help="The destination to resume")]) -> None:
    """Resume a paused destination."""
    _set_paused(destination, False)


def register(app: typer.Typer) -> None:
    app.command()(worker)
    app.command()(deliveries)
    app.command()(replay)
    app.command()(pause)
    app.command()(resume)
    app.command()(prune)

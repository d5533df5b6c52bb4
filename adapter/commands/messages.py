"""The message commands of ``adapter``: ``ingest``, ``messages``, ``show``, ``reprocess``
(``demo``: demo.py). Listing and showing start without the mappings (they must work while a broken
mapping is being fixed); ingesting and reprocessing start the whole adapter.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import typer

from adapter.commands import common
from adapter.errors import AdapterError


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


def ingest(
    files: Annotated[list[Path], typer.Argument(exists=True, dir_okay=False)],
    source: Annotated[
        str, typer.Option("--source", "-s", help="Source system id (consortium file)")
    ],
    content_type: Annotated[str | None, typer.Option(help="Content type to record")] = None,
    batch: Annotated[
        int,
        typer.Option(
            min=1,
            help="Files stored per transaction, each in a savepoint of its own: one bad file "
            "never costs the others their work (1: one transaction per file)",
        ),
    ] = 100,
) -> None:
    """Ingest files from one source system; exit 1 if any was quarantined."""
    from adapter.heap import settled

    runtime = common.start()
    failed = 0
    try:
        with settled():
            for name, result in _ingest_batches(runtime, files, batch, source, content_type):
                if isinstance(result, AdapterError):
                    typer.secho(f"{name}: {result.message}", fg=typer.colors.RED)
                    failed += 1
                    continue
                _print_result(name, result)
                failed += 0 if result.accepted else 1
    finally:
        runtime.close()
    raise typer.Exit(1 if failed else 0)


def _ingest_batches(runtime, files: list[Path], batch: int, source: str, content_type: str | None):
    """Each batch of files in turn; with many files, translation workers translate while
    the store writes, the next batch while this one is stored (ADAPTER_TRANSLATE_WORKERS)."""
    pipeline = runtime.pipeline
    with pipeline.translation_workers(runtime.settings.translate_workers if len(files) > 1 else 0):
        read = (
            _read_files(pipeline, files[start : start + batch], source, content_type)
            for start in range(0, len(files), batch)
        )
        taken: list[_Files] = []  # read, and maybe sent ahead, not yet reported

        def batches():
            for files_read in read:
                taken.append(files_read)
                yield files_read, files_read.items

        try:
            for files_read, results in pipeline.ingest_labelled(batches()):
                taken.pop(0)
                yield from _reported(pipeline, files_read, results, source, content_type)
        except AdapterError as exc:  # an unknown source: every file of the batch says so
            yield from _reported(pipeline, taken.pop(0), exc, source, content_type)
            for files_read in [*taken, *read]:  # and the others, each batch on its own
                results = _ingested(pipeline, files_read)
                yield from _reported(pipeline, files_read, results, source, content_type)


def _ingested(pipeline, read: _Files):
    """The results of one batch of files read, or the error that failed it."""
    try:
        return list(pipeline.ingest_many(read.items, batch=max(1, len(read.items))))
    except AdapterError as exc:
        return exc


@dataclass
class _Files:
    """A batch of files read: each message's name, those stored together, files kept alone."""

    names: list[str] = field(default_factory=list)
    together: list[int] = field(default_factory=list)  # positions in names, in items' order
    items: list = field(default_factory=list)
    alone: list[tuple[int, Path]] = field(default_factory=list)


def _read_files(pipeline, paths: list[Path], source: str, content_type: str | None) -> _Files:
    """The messages of one batch of files, stored in one transaction
    (Pipeline.ingest_labelled), each in a savepoint of its own. A file of several HL7 v2
    messages is split, one message per MSH (adapter/hl7v2/split.py), each named ``file
    [message 2 of 3]``; a file over ADAPTER_MAX_MESSAGE_BYTES is not read whole, its first
    bytes are kept (on its own, not split: ``_reported``)."""
    from adapter.hl7v2.split import split_messages
    from adapter.pipeline import Channel, Receipt

    read = _Files()
    for path in paths:
        if path.stat().st_size > pipeline.max_bytes:
            read.alone.append((len(read.names), path))
            read.names.append(str(path))
            continue
        for part in split_messages(path.read_bytes(), content_type):
            peer = part.label(path.name)
            receipt = Receipt(source, Channel.CLI, peer=peer, content_type=content_type)
            read.together.append(len(read.names))
            read.names.append(part.label(str(path)))
            read.items.append((part.raw, receipt))
    return read


def _reported(pipeline, read: _Files, results, source: str, content_type: str | None):
    """(name, result or the error) for each message of ``read``, in order, once its batch's
    ``results`` (or the error that failed it) are known; the files kept alone are ingested
    here."""
    out: dict[int, object] = {}
    if isinstance(results, AdapterError):
        out.update(dict.fromkeys(read.together, results))
    else:
        out.update(zip(read.together, results, strict=True))
    for n, path in read.alone:
        try:
            out[n] = _ingest_file(pipeline, path, source, content_type)
        except AdapterError as exc:
            out[n] = exc
    return [(name, out[n]) for n, name in enumerate(read.names)]


def _ingest_file(pipeline, path: Path, source: str, content_type: str | None):
    """A file over ADAPTER_MAX_MESSAGE_BYTES is not read whole: its first bytes are kept."""
    from adapter.oversize import Oversize
    from adapter.pipeline import Channel, Receipt

    receipt = Receipt(source, Channel.CLI, peer=path.name, content_type=content_type)
    with path.open("rb") as handle:
        size = path.stat().st_size
        if size > pipeline.max_bytes:
            prefix = handle.read(pipeline.keep_bytes)
            return pipeline.refuse_oversize(Oversize(prefix, size), receipt)
        return pipeline.ingest(handle.read(), receipt)


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
    runtime = common.start(check_connectors=False, load_mappings=False, publish=False)
    try:
        with runtime.factory() as session:
            rows = list_messages(session, status, limit)
            typer.echo(
                f"{'message':36}  {'received (UTC)':19}  {'source':14}  {'channel':9}  "
                f"{'status':24}  resources  issues  peer"
            )
            for m in rows:
                typer.echo(
                    f"{m.id:36}  {m.received_at:%Y-%m-%d %H:%M:%S}  "
                    f"{m.source_system:14}  {m.channel or '-':9}  {m.status:24}  "
                    f"{len(m.resources or []):9}  {len(m.issues or []):6}  {m.peer or '-'}"
                )
    finally:
        runtime.close()


def show(message_id: str) -> None:
    """Show one message: status, every issue with its location, the resources it made."""
    from adapter.store import get_message

    runtime = common.start(check_connectors=False, load_mappings=False, publish=False)
    try:
        with runtime.factory() as session:
            m = get_message(session, message_id)
            if m is None:
                typer.secho(f"no message {message_id}", fg=typer.colors.RED, err=True)
                raise typer.Exit(1)
            typer.echo(f"message {m.id} from {m.source_system} ({m.facility_id})")
            if m.channel:  # not recorded for messages stored before migration 0004
                typer.echo(f"via {m.channel}" + (f" from {m.peer}" if m.peer else ""))
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
        runtime.close()


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
    runtime = common.start()
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


def drain(
    batch: Annotated[
        int, typer.Option(min=1, max=1000, help="Documents stored per transaction at most")
    ] = 100,
    follow: Annotated[
        bool,
        typer.Option("--follow", help="Keep draining as documents arrive, until SIGINT or SIGTERM"),
    ] = False,
) -> None:
    """Translate and store the documents answered on receipt (status received), oldest
    first; several drains may run at once on PostgreSQL (docs/running.md)."""
    import signal
    import threading

    from adapter.heap import settled
    from adapter.pipeline.drain import Drainer, backlog, drain_batch
    from adapter.store import read_only

    runtime = common.start(logs=follow)
    pipeline = runtime.pipeline
    workers = runtime.settings.translate_workers
    try:
        if follow:
            drainer = Drainer(pipeline, batch=batch, workers=0 if workers is None else workers)
            stop = threading.Event()
            for signum in (signal.SIGINT, signal.SIGTERM):
                signal.signal(signum, lambda *_: stop.set())
            drainer.start()
            while not stop.wait(1.0):
                pass
            drainer.stop()
            typer.echo(f"{drainer.drained} drained")
            return
        counts: Counter[str] = Counter()
        with pipeline.translation_workers(workers), settled():
            while True:
                results = drain_batch(pipeline, batch)
                counts.update(r.status for r in results)
                if len(results) < batch:
                    break
        with runtime.factory() as session:
            left = backlog(read_only(session))
        done = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "nothing"
        typer.echo(f"drained: {done}; {left.count} still received")
    finally:
        runtime.close()


def register(app: typer.Typer) -> None:
    app.command()(ingest)
    app.command()(messages)
    app.command()(show)
    app.command()(reprocess)
    app.command()(drain)

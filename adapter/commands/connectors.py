"""The connector commands of ``adapter``: ``connectors check``, ``listen``, ``poll``.

Registered on the main typer app by :func:`register` (adapter/cli.py). ``listen`` and
``poll`` start the whole adapter (commands.common.start), with logging.
"""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from typing import Annotated, Any

import typer

from adapter.commands import common
from adapter.errors import AdapterError

connectors_app = typer.Typer(
    help="Sources and destinations of the consortium file.", no_args_is_help=True
)


def _wait_for_signal() -> None:
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    while not stop.wait(1.0):
        pass


# -- connectors check -------------------------------------------------------------------------
@connectors_app.command("check")
def check(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line")] = False,
    timeout: Annotated[
        float, typer.Option(help="Give up on one endpoint after this many seconds")
    ] = 15.0,
) -> None:
    """Try every configured destination and source; print name, kind, reachable, latency,
    error. Exit 1 when an enabled one is unreachable, 2 when the settings are wrong."""
    from adapter.connectors.base import CheckResult
    from adapter.consortium import load_consortium
    from adapter.inbound.base import build_listener, build_source
    from adapter.outbound.base import build_destination

    settings = common.settings()
    common.configure_logs(settings)
    try:
        consortium = load_consortium(settings.config)
        endpoints: list[tuple[Any, bool]] = []
        for facility, config in consortium.destinations():
            endpoints.append((build_destination(facility, config), config.enabled))
        for facility in consortium.facilities:
            for source in facility.sources:
                built = build_source(facility, source) or build_listener(facility, source)
                if built is not None:
                    endpoints.append((built, True))
    except AdapterError as exc:
        raise common.fail(f"cannot start: {exc.message}") from None

    def run(endpoint: Any) -> CheckResult:
        return endpoint.check()

    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            futures = [pool.submit(run, e) for e, _ in endpoints]
            results: list[CheckResult] = []
            for (endpoint, _), future in zip(endpoints, futures, strict=True):
                try:
                    results.append(future.result(timeout=timeout))
                except Exception as exc:  # a timeout or a crash of the probe itself
                    results.append(
                        CheckResult(
                            endpoint.id,
                            endpoint.kind,
                            False,
                            None,
                            f"{type(exc).__name__}: no answer",
                        )
                    )
    finally:
        for endpoint, _ in endpoints:
            close = getattr(endpoint, "close", None)
            if close is not None:
                close()

    failed = 0
    if not as_json:
        typer.echo(f"{'name':32}  {'kind':14}  {'reachable':9}  {'latency':>9}  error")
    for result, (_, enabled) in zip(results, endpoints, strict=True):
        if not result.reachable and enabled:
            failed += 1
        if as_json:
            typer.echo(json.dumps({**asdict(result), "enabled": enabled}, ensure_ascii=False))
            continue
        name = result.name + ("" if enabled else " (disabled)")
        latency = f"{result.latency_ms:.1f} ms" if result.latency_ms is not None else "-"
        colour = (
            typer.colors.GREEN
            if result.reachable
            else (typer.colors.RED if enabled else typer.colors.YELLOW)
        )
        typer.secho(
            f"{name:32}  {result.kind:14}  {'yes' if result.reachable else 'no':9}  "
            f"{latency:>9}  {result.error or ''}",
            fg=colour,
        )
    if not endpoints and not as_json:
        typer.echo("(no destinations or source connectors configured)")
    raise typer.Exit(1 if failed else 0)


def _connectors_of(
    runtime: Any, wanted: list[str] | None, build: Callable[[Any, Any], Any]
) -> tuple[list[Any], set[str]]:
    """The connectors ``build`` makes for the chosen sources, and the chosen ids it made none
    for."""
    built: list[Any] = []
    for facility in runtime.consortium.facilities:
        for system in facility.sources:
            if wanted and system.id not in wanted:
                continue
            connector = build(facility, system)
            if connector is not None:
                built.append(connector)
    return built, set(wanted or ()) - {c.id for c in built}


# -- listen -----------------------------------------------------------------------------------
def listen(
    source: Annotated[
        list[str] | None,
        typer.Option("--source", "-s", help="Only these source systems (default: every MLLP one)"),
    ] = None,
) -> None:
    """Run the MLLP listeners of the consortium file's sources until stopped (Ctrl-C)."""
    from adapter.inbound.base import build_listener

    runtime = common.start(logs=True)
    listeners: list[Any] = []
    try:
        listeners, missing = _connectors_of(runtime, source, build_listener)
        if missing:
            raise common.fail(f"no MLLP connector for: {', '.join(sorted(missing))}")
        if not listeners:
            raise common.fail("no source has an MLLP connector (sources[].connector.kind: mllp)")
        for listener in listeners:
            port = listener.start(runtime.pipeline)
            typer.echo(f"{listener.id}: listening on {listener.settings.host}:{port}")
        _wait_for_signal()
    except AdapterError as exc:
        raise common.fail(f"cannot start: {exc.message}") from None
    except OSError as exc:
        raise common.fail(f"cannot listen: {exc}") from None
    finally:
        for listener in listeners:
            listener.stop()
        runtime.close()


# -- poll -------------------------------------------------------------------------------------
def poll(
    source: Annotated[
        list[str] | None,
        typer.Option(
            "--source", "-s", help="Only these source systems (default: every polled one)"
        ),
    ] = None,
    once: Annotated[
        bool, typer.Option("--once", help="One round, then exit (1 if a round stopped on an error)")
    ] = False,
) -> None:
    """Poll the file-drop and FHIR-pull sources of the consortium file (until stopped)."""
    from adapter.inbound.base import build_source
    from adapter.inbound.poller import poll_once, run_forever

    runtime = common.start(logs=True)
    sources: list[Any] = []
    try:
        sources, missing = _connectors_of(runtime, source, build_source)
        if missing:
            raise common.fail(
                f"no polled connector (file, fhir-pull) for: {', '.join(sorted(missing))}"
            )
        if not sources:
            raise common.fail("no source has a file or fhir-pull connector")
        if once:
            errors = 0
            for polled in sources:
                summary = poll_once(polled, runtime.pipeline)
                errors += 1 if summary.error else 0
                typer.secho(str(summary), fg=typer.colors.RED if summary.error else None)
            raise typer.Exit(1 if errors else 0)
        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        typer.echo(
            "polling "
            + ", ".join(f"{s.id} ({s.kind}, every {s.interval_seconds:g} s)" for s in sources)
        )
        run_forever(
            sources,
            runtime.pipeline,
            stop,
            on_round=lambda summary: (
                typer.echo(str(summary)) if summary.read or summary.error else None
            ),
        )
    except AdapterError as exc:
        raise common.fail(f"cannot start: {exc.message}") from None
    finally:
        for polled in sources:
            polled.close()
        runtime.close()


def register(app: typer.Typer) -> None:
    app.add_typer(connectors_app, name="connectors")
    app.command("listen")(listen)
    app.command("poll")(poll)

"""``adapter serve``: the HTTP API (and, with ADAPTER_DELIVER_IN_PROCESS, the delivery
worker) under uvicorn."""

from __future__ import annotations

import ipaddress
import logging
from typing import Annotated

import typer

from adapter.commands import common
from adapter.errors import AdapterError


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8080,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            max=64,
            help="Processes accepting on the port (one core each); see docs/running.md",
        ),
    ] = 1,
) -> None:
    """Run the HTTP API (ingest, messages, FHIR) with uvicorn."""
    from sqlalchemy.exc import SQLAlchemyError

    from adapter.api.app import create_app, prepare_database
    from adapter.api.server import run

    settings = common.settings()
    try:
        common.configure_logs(settings)
        application = create_app(settings)  # build_runtime(settings, run_migrations=False)
        if workers > 1:
            check_workers(application, workers)
    except AdapterError as exc:
        raise common.cannot_start(exc.message) from None
    except SQLAlchemyError as exc:
        raise common.database_unusable(settings, exc) from None
    if not settings.auth:
        warn_auth_off(host)

    def before_fork() -> None:
        """Once, before the workers exist: the schema and CodeSystems (prepare_database),
        then no database connection left open to be inherited by them."""
        try:
            prepare_database(application)
        except SQLAlchemyError as exc:
            raise common.database_unusable(settings, exc) from None
        application.state.engine.dispose()

    run(application, settings, host=host, port=port, workers=workers, before_fork=before_fork)


def check_workers(application, workers: int) -> None:  # type: ignore[no-untyped-def]
    """What several worker processes cannot share: say so at start-up, not later."""
    from adapter.errors import ConfigError

    settings = application.state.settings
    if settings.deliver_in_process:
        raise ConfigError(
            f"--workers {workers} with ADAPTER_DELIVER_IN_PROCESS: each worker would run a "
            "delivery worker; run one `adapter worker` beside the server instead"
        )
    auth = application.state.auth
    if auth is not None and auth.tokens.keys.ephemeral:
        raise ConfigError(
            f"--workers {workers} needs ADAPTER_AUTH_SIGNING_KEY: without it each worker "
            "would sign tokens with a key of its own that the others refuse "
            "(adapter auth keygen; docs/security.md)"
        )


def warn_auth_off(host: str) -> None:
    """Say loudly that anyone who reaches the port may read and send everything."""
    if _loopback(host):
        typer.secho(
            "ADAPTER_AUTH=off: no authentication (listening on loopback only)",
            fg=typer.colors.YELLOW,
            err=True,
        )
        return
    banner = "!" * 78
    typer.secho(
        f"{banner}\n"
        f"WARNING: ADAPTER_AUTH=off and listening on {host}: ANYONE who reaches this port\n"
        "can read every patient's data, read raw messages, send documents and replay\n"
        "deliveries. Turn authentication on (unset ADAPTER_AUTH; docs/security.md) or\n"
        "listen on 127.0.0.1 only.\n"
        f"{banner}",
        fg=typer.colors.RED,
        bold=True,
        err=True,
    )
    logging.getLogger("adapter.serve").warning(
        "ADAPTER_AUTH=off and listening on %s: no authentication", host
    )


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve beyond loopback


def register(app: typer.Typer) -> None:
    app.command()(serve)

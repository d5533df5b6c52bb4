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
) -> None:
    """Run the HTTP API (ingest, messages, FHIR) with uvicorn."""
    from sqlalchemy.exc import SQLAlchemyError

    from adapter.api.app import create_app
    from adapter.api.server import run

    settings = common.settings()
    try:
        common.configure_logs(settings)
        application = create_app(settings)  # build_runtime(settings, run_migrations=False)
    except AdapterError as exc:
        raise common.cannot_start(exc.message) from None
    except SQLAlchemyError as exc:
        raise common.database_unusable(settings, exc) from None
    if not settings.auth:
        warn_auth_off(host)
    run(application, settings, host=host, port=port)


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

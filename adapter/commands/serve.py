"""``adapter serve``: the HTTP API (and, with ADAPTER_DELIVER_IN_PROCESS, the delivery
worker) under uvicorn."""

from __future__ import annotations

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
    run(application, settings, host=host, port=port)


def register(app: typer.Typer) -> None:
    app.command()(serve)

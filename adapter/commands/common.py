"""What every ``adapter`` command shares: reading the settings, starting the adapter through
the one start-up path (:func:`adapter.runtime.build_runtime`) and failing with a clear line.

A command that cannot start prints ``cannot start: <reason>`` in red and exits with 2.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import typer

from adapter.errors import AdapterError
from adapter.settings import Settings, get_settings

if TYPE_CHECKING:
    from adapter.runtime import Runtime


def fail(message: str, code: int = 2) -> typer.Exit:
    typer.secho(message, fg=typer.colors.RED, err=True)
    return typer.Exit(code)


def since_option(value: str | None, name: str = "--since") -> datetime | None:
    """An ISO date or time option as an aware moment (UTC when it names no zone)."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise fail(f"{name} {value!r}: give an ISO date or time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def cannot_start(reason: str) -> typer.Exit:
    return fail(f"cannot start: {reason}")


def settings() -> Settings:
    """The settings; a wrong ADAPTER_ variable is a one-line error naming it."""
    from pydantic import ValidationError

    try:
        return get_settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        name = "ADAPTER_" + "_".join(str(p) for p in first["loc"]).upper()
        raise cannot_start(f"{name}: {first['msg']}") from None


def configure_logs(chosen: Settings) -> None:
    """Long-running commands log (JSON or text, redacted); the inspecting ones print."""
    from adapter.logs import configure_logging

    configure_logging(chosen.log_level, json=chosen.log_json)


def start(
    *,
    logs: bool = False,
    check_connectors: bool = True,
    load_mappings: bool = True,
    publish: bool = True,
    chosen: Settings | None = None,
) -> Runtime:
    """The adapter, built by :func:`adapter.runtime.build_runtime`; ``cannot start`` on a
    bad consortium file, connector setting, mapping or database. Commands that only read
    the message store or deliver start without the mappings (a broken mapping is being
    fixed meanwhile) and without checking every connector."""
    from sqlalchemy.exc import SQLAlchemyError

    from adapter.runtime import build_runtime

    chosen = chosen or settings()
    try:
        if logs:
            configure_logs(chosen)
        return build_runtime(
            chosen,
            check_connectors=check_connectors,
            load_mappings=load_mappings,
            publish=publish,
        )
    except AdapterError as exc:
        raise cannot_start(exc.message) from None
    except SQLAlchemyError as exc:
        raise database_unusable(chosen, exc) from None


def database_unusable(chosen: Settings, exc: Exception) -> typer.Exit:
    return cannot_start(
        f"the database {safe_url(chosen.database_url)} cannot be used ({type(exc).__name__})"
    )


def safe_url(url: str) -> str:
    """The database URL without its password (it is printed)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:  # an unparsable URL fails later with its own error
        return "(unreadable database URL)"

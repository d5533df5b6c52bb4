"""Building the running adapter from settings: consortium, database, mappings, pipeline.

Both the HTTP app and the CLI start here, so both refuse to start on the same mistakes:
a bad consortium file, an unreachable database, a mapping file that does not check.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from adapter.consortium import Consortium, load_consortium
from adapter.fhir.published import publish
from adapter.inbound.base import validate_sources
from adapter.input_limits import InputLimits
from adapter.outbound.base import validate_destinations
from adapter.pipeline import Pipeline
from adapter.settings import Settings, originals_base
from adapter.store import make_engine, migrate, session_factory


@dataclass(slots=True)
class Runtime:
    settings: Settings
    consortium: Consortium
    engine: Engine
    factory: sessionmaker[Session]
    pipeline: Pipeline

    def close(self) -> None:
        self.engine.dispose()


def validate_connectors(consortium: Consortium) -> None:
    """Build (and close) every destination, source and listener of the consortium, so that
    a wrong connector setting or a missing secret stops start-up (``ConfigError``)."""
    validate_destinations(consortium)
    validate_sources(consortium)


def make_pipeline(
    settings: Settings, consortium: Consortium, factory: sessionmaker[Session]
) -> Pipeline:
    """The pipeline with every source's mappings loaded (a broken mapping stops start-up)."""
    pipeline = Pipeline(
        consortium,
        factory,
        mappings_dir=settings.mappings_dir,
        max_bytes=settings.max_message_bytes,
        default_timezone=settings.default_timezone,
        keep_bytes=settings.oversize_keep_bytes,
        original_inline_max_bytes=settings.original_inline_max_bytes,
        originals_base=originals_base(settings),
        limits=InputLimits.from_settings(settings),
    )
    pipeline.load_all_mappings()
    return pipeline


def build_runtime(
    settings: Settings, *, engine: Engine | None = None, run_migrations: bool = True
) -> Runtime:
    consortium = load_consortium(settings.config)
    validate_connectors(consortium)  # a wrong connector setting or missing secret stops here
    engine = engine or make_engine(settings.database_url)
    if run_migrations:
        migrate(engine)
    factory = session_factory(engine)
    if run_migrations:
        publish(factory)  # the adapter's own CodeSystems (adapter/data/fhir/)
    return Runtime(
        settings, consortium, engine, factory, make_pipeline(settings, consortium, factory)
    )

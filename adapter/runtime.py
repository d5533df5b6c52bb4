"""Building the running adapter from settings: consortium, database, mappings, pipeline.

The HTTP app, every CLI command and the delivery worker start here (build_runtime), so
they refuse to start on the same mistakes: a bad consortium file, a wrong connector
setting, an unreachable database, a mapping file that does not check. This is also the
composition root: the one module that knows both the inbound and the outbound side.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from adapter.consortium import Consortium, load_consortium
from adapter.fhir.published import publish as publish_code_systems
from adapter.inbound.base import validate_sources
from adapter.input_limits import InputLimits
from adapter.outbound.base import validate_destinations
from adapter.pipeline import Pipeline
from adapter.recognition.catalogue import Catalogue, load_configured_catalogue
from adapter.settings import Settings, originals_base
from adapter.store import make_engine, migrate, session_factory


@dataclass(slots=True)
class Runtime:
    settings: Settings
    consortium: Consortium
    engine: Engine
    factory: sessionmaker[Session]
    loaded_pipeline: Pipeline | None = None  # None when built with load_mappings=False
    recognition: Catalogue | None = None  # the 互认 catalogue; None: recognition is off

    @property
    def pipeline(self) -> Pipeline:
        if self.loaded_pipeline is None:
            raise RuntimeError("this runtime was built without its mappings (load_mappings)")
        return self.loaded_pipeline

    def close(self) -> None:
        self.engine.dispose()


def validate_connectors(consortium: Consortium) -> None:
    """Build (and close) every destination, source and listener of the consortium, so that
    a wrong connector setting or a missing secret stops start-up (``ConfigError``)."""
    validate_destinations(consortium)
    validate_sources(consortium)


def make_pipeline(
    settings: Settings,
    consortium: Consortium,
    factory: sessionmaker[Session],
    *,
    only_sources: list[str] | None = None,
    recognition: Catalogue | None = None,
) -> Pipeline:
    """The pipeline with every source's mappings loaded (a broken mapping stops start-up);
    ``only_sources``: just these (``adapter sync`` reads a few sources, and starts often);
    ``recognition``: the catalogue whose marks the stored results get."""
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
        recognition=recognition,
    )
    pipeline.group_commit.max_group = settings.ingest_group_max
    if only_sources is None:
        pipeline.load_all_mappings()
    for source_id in only_sources or ():
        facility, source = pipeline.translator.source(source_id)
        pipeline.mapping_set(facility, source)
    return pipeline


def build_runtime(
    settings: Settings,
    *,
    engine: Engine | None = None,
    run_migrations: bool = True,
    check_connectors: bool = True,
    load_mappings: bool = True,
    publish: bool = True,
) -> Runtime:
    """The one start-up path: ``adapter serve`` (create_app, which migrates in its lifespan:
    ``run_migrations=False``), every CLI command that starts the adapter, and the delivery
    worker. In this order, each step stopping start-up on a mistake: the consortium file
    and the recognition catalogue beside it,
    every connector's settings and secrets, the database (migrated), the adapter's own
    CodeSystems, the mappings. The worker and the message listings skip the connectors
    check, the CodeSystems and the mappings (``False``): they need none of them."""
    consortium = load_consortium(settings.config)
    recognition = load_configured_catalogue(
        settings.recognition_catalogue, settings.config, consortium
    )
    if check_connectors:
        validate_connectors(consortium)  # a wrong connector setting or missing secret stops here
    engine = engine or make_engine(settings.database_url)
    if run_migrations:
        migrate(engine)
    factory = session_factory(engine)
    if run_migrations and publish:
        publish_code_systems(factory, recognition=recognition)  # the adapter's own CodeSystems
    pipeline = (
        make_pipeline(settings, consortium, factory, recognition=recognition)
        if load_mappings
        else None
    )
    return Runtime(settings, consortium, engine, factory, pipeline, recognition)


def record_config_loaded(runtime: Runtime, process: str) -> None:
    """Audit that ``process`` started with this consortium file (its sha256) and these
    mapping sets (folder and fingerprint of each source's set)."""
    import hashlib
    from datetime import UTC, datetime

    from adapter import audit
    from adapter.audit.writer import record_now

    config = runtime.settings.config
    mappings = []
    if runtime.loaded_pipeline is not None:
        for facility in runtime.consortium.facilities:
            for source in facility.sources:
                found = runtime.loaded_pipeline.mapping_set(facility, source)
                mappings.append(f"{source.id}={found.folder}@{found.fingerprint}")
    record_now(
        runtime.factory,
        audit.AuditEvent(
            action="config.loaded",
            outcome="success",
            actor=f"adapter:{process}",
            subject=None,
            correlation_id=None,
            at=datetime.now(UTC),
            client=None,
            channel=process,
            detail={
                "config": config.name,
                "config_sha256": hashlib.sha256(config.read_bytes()).hexdigest(),
                "mappings": ",".join(mappings)[:2000] or None,
                "facilities": len(runtime.consortium.facilities),
            },
        ),
    )

"""The FastAPI application: ``create_app(settings)``.

Routers are split by area; adding one is one line in ``ROUTERS``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import ExitStack, asynccontextmanager
from datetime import UTC, datetime

from fastapi import APIRouter, Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.concurrency import run_in_threadpool

from adapter import __version__
from adapter.api import (
    audit_disclosures,
    audit_events,
    auth,
    binary,
    care,
    deliveries,
    docs,
    fhir,
    fhir_search,
    health,
    history,
    ingest,
    metrics,
    operations,
    patients,
    recognition,
    recognition_consent,
    recognition_decisions,
    referral_ledger,
    referrals,
)
from adapter.api.access_log import AccessLogMiddleware
from adapter.api.authz import Authority, authorize
from adapter.api.docs import mount_assets
from adapter.api.drain_process import DrainProcess, drain_defer_seconds
from adapter.api.errors import install_error_handlers
from adapter.api.negotiation import FhirNegotiation
from adapter.api.openapi import install_openapi
from adapter.api.request_checks import RequestChecks
from adapter.api.request_id import RequestIdMiddleware
from adapter.api.responses import FHIRResponse
from adapter.api.security_headers import NoSniffMiddleware
from adapter.audit.checkpoints import start_checkpoints
from adapter.auth.assertions import Assertions
from adapter.auth.client_secrets import Secrets
from adapter.auth.keys import load_keys
from adapter.auth.ratelimit import FailureLimiter
from adapter.auth.tokens import TokenService
from adapter.console.setup import install_console
from adapter.consortium import Consortium
from adapter.delivery.service import build_worker, start_in_process
from adapter.fhir.dates import format_instant
from adapter.fhir.published import publish
from adapter.heap import settled
from adapter.pipeline import Pipeline
from adapter.pipeline.drain import Drainer
from adapter.runtime import build_runtime, record_config_loaded
from adapter.settings import Settings, get_settings
from adapter.store import migrate

log = logging.getLogger(__name__)

ROUTERS: tuple[APIRouter, ...] = (
    auth.router,
    audit_disclosures.router,
    docs.router,
    health.router,
    metrics.router,
    ingest.router,
    deliveries.router,
    audit_events.router,  # before fhir.router: /fhir/AuditEvent is not a stored type
    binary.router,  # nor is /fhir/Binary (the inbound messages as received)
    care.router,
    history.router,  # before fhir.router: /fhir/_history is not a search
    operations.router,
    patients.router,  # before fhir: /fhir/Patient/$match is not a read of id "$match"
    recognition.router,  # before fhir.router: /fhir/Patient/{id}/$recognisable
    recognition_decisions.router,
    recognition_decisions.stats_router,
    recognition_consent.router,
    referral_ledger.router,  # the 转诊台账, analysis, worklist
    referrals.router,  # PUT / PATCH /fhir/Task/{id}: the referral state machine
    fhir.router,
    fhir_search.router,  # after fhir.router: /fhir/{type} must not shadow /fhir/metadata
)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The adapter's HTTP API. The schema is migrated at start-up (lifespan)."""
    settings = settings or get_settings()
    # a bad consortium file, connector setting or mapping stops start-up here, with file,
    # line and key; the schema is migrated in the lifespan
    runtime = build_runtime(settings, run_migrations=False)
    engine, consortium = runtime.engine, runtime.consortium

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not app.state.prepared:  # several workers: done once before they were forked
            await run_in_threadpool(prepare_database, app)
        await run_in_threadpool(record_config_loaded, runtime, "serve")
        checkpoints = start_checkpoints(settings, app.state.session_factory)
        # translation workers for the server's life (ADAPTER_TRANSLATE_WORKERS, off unless
        # set): group commit's callers and the drain translate there (decision 0068)
        workers = ExitStack()
        workers.enter_context(runtime.pipeline.translation_workers(settings.translate_workers or 0))
        drainer = start_drain(settings, runtime.pipeline)
        if delivery_worker is not None:
            app.state.delivery = await run_in_threadpool(
                start_in_process, delivery_worker, engine, app.state.session_factory, settings
            )
        try:
            with settled():  # start-up's objects out of the collector's full passes
                yield
        finally:
            if checkpoints is not None:
                checkpoints.stop()
            if drainer is not None:
                await run_in_threadpool(drainer.stop)
            await run_in_threadpool(workers.close)
            if app.state.delivery is not None:
                await run_in_threadpool(app.state.delivery.stop)
            engine.dispose()

    app = FastAPI(
        title="County medical consortium FHIR adapter",
        version=__version__,
        default_response_class=FHIRResponse,
        lifespan=lifespan,
        # FastAPI's pages load their scripts from a CDN: adapter/api/docs.py serves its own
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.session_factory = runtime.factory
    app.state.consortium = consortium
    app.state.recognition = runtime.recognition  # the 互认 catalogue, None when off
    app.state.pipeline = runtime.pipeline
    app.state.auth = build_authority(settings, consortium) if settings.auth else None
    # built here so that bad destination settings stop start-up like a bad consortium file
    delivery_worker = (
        build_worker(consortium, app.state.session_factory) if settings.deliver_in_process else None
    )
    app.state.started_at = format_instant(datetime.now(UTC))
    app.state.delivery = None  # the in-process delivery worker, once it runs
    app.state.prepared = False  # schema migrated and CodeSystems published (prepare_database)
    app.state.runtime = runtime
    install_error_handlers(app)
    app.add_middleware(FhirNegotiation)  # innermost: sees the routes' FHIR JSON answers
    app.add_middleware(RequestChecks)
    app.add_middleware(NoSniffMiddleware)  # also on RequestChecks' answers
    if settings.cors_origins:  # off unless configured (docs/configuration.md)
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials=settings.cors_allow_credentials and "*" not in settings.cors_origins,
            allow_methods=["GET", "HEAD", "POST", "PUT", "PATCH", "OPTIONS"],
            allow_headers=["*"],
            expose_headers=["ETag", "Last-Modified", "Location", "Content-Location"],
            max_age=settings.cors_max_age_seconds,
        )
    app.add_middleware(RequestIdMiddleware)  # every answer carries X-Request-Id
    app.add_middleware(AccessLogMiddleware)  # added last: the outermost, sees every answer
    for router in ROUTERS:
        # every route runs the one authorisation dependency (adapter/auth/rules.py)
        app.include_router(router, dependencies=[Depends(authorize)])
    mount_assets(app)
    install_console(app, settings)  # /console/: the web console (docs/console.md)
    install_openapi(app, ROUTERS)
    return app


def prepare_database(app: FastAPI) -> None:
    """Migrate the schema and publish the adapter's own CodeSystems (readable at
    /fhir/CodeSystem/{id}): the lifespan does it, or ``adapter serve --workers N`` once
    before forking (N processes doing it at once would race on a new database)."""
    migrate(app.state.engine)
    publish(app.state.session_factory, recognition=app.state.runtime.recognition)
    app.state.prepared = True


def start_drain(settings: Settings, pipeline: Pipeline) -> Drainer | DrainProcess | None:
    """The drain of documents answered on receipt (adapter/pipeline/drain.py), woken by each
    receipt this process keeps: in a process of its own with translation workers (decision
    0102: the store out of the receipts' interpreter lock; ADAPTER_INGEST_DRAIN_PROCESS),
    else a thread of the server; translation workers only when ADAPTER_TRANSLATE_WORKERS is
    set (each is another process holding the mappings)."""
    if not settings.ingest_drain:
        return None
    workers = settings.translate_workers or 0
    apart = settings.ingest_drain_process
    drainer: Drainer | DrainProcess
    if apart or (apart is None and workers > 0):
        drainer = DrainProcess(settings)
    else:
        drainer = Drainer(
            pipeline,
            batch=settings.ingest_drain_batch,
            defer_seconds=drain_defer_seconds(settings, apart=False),
            workers=workers,
        )
        drainer.start()
    pipeline.receipts.on_received = drainer.wake
    return drainer


def build_authority(settings: Settings, consortium: Consortium) -> Authority:
    """Keys, client secrets and the failure limiter; a bad key file stops start-up."""
    keys = load_keys(settings)
    if keys.ephemeral:
        log.warning(
            "ADAPTER_AUTH_SIGNING_KEY is not set: tokens are signed with a key made now and "
            "lost at restart (adapter auth keygen makes one to keep; docs/security.md)"
        )
    return Authority(
        tokens=TokenService(
            keys, settings.auth_issuer, settings.auth_audience, settings.auth_token_seconds
        ),
        secrets=Secrets(consortium),
        limiter=FailureLimiter(settings.auth_max_failures, settings.auth_failure_window_seconds),
        assertions=Assertions(consortium),
    )

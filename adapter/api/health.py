"""``GET /health``: is the adapter able to take messages, and are its deliveries flowing?
(Docker and load balancers ask.)

``ok``        the database answers and every enabled destination is delivering
``degraded``  still taking messages (HTTP 200), but a destination's circuit breaker is open
              or its oldest undelivered item is older than the threshold
``down``      the database does not answer (HTTP 503)
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import Connection, text
from starlette.responses import JSONResponse

from adapter import __version__
from adapter.delivery.health import destination_statuses
from adapter.store import read_only

router = APIRouter(tags=["health"])


@router.get("/health")
def health(request: Request) -> JSONResponse:
    state = request.app.state
    started = time.perf_counter()
    checks: dict[str, dict[str, Any]] = {}
    try:
        with state.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
            latency_ms = round((time.perf_counter() - started) * 1000, 2)
            warnings = _database_warnings(connection)
        checks["database"] = {"status": "ok", "latency_ms": latency_ms}
        if warnings:
            checks["database"]["warnings"] = warnings
    except Exception as exc:  # any driver error means: not able to store messages
        checks["database"] = {"status": "down", "error": type(exc).__name__}
    pipeline = state.pipeline
    checks["mappings"] = {"status": "ok", "sources": sorted(pipeline.loaded_sources())}
    if checks["database"]["status"] == "ok":
        checks["delivery"] = _delivery(request)
    statuses = {c["status"] for c in checks.values()}
    status = "down" if "down" in statuses else "degraded" if "degraded" in statuses else "ok"
    return JSONResponse(
        {
            "status": status,
            "version": __version__,
            "started_at": state.started_at,
            "checks": checks,
        },
        status_code=503 if status == "down" else 200,
    )


def _database_warnings(connection: Connection) -> list[str]:
    """Settings that keep the adapter running but slow it down as the tables grow."""
    if connection.dialect.name != "postgresql":
        return []
    if connection.execute(text("SHOW autovacuum")).scalar_one() == "on":
        return []
    # every statement is then planned with the statistics of when the tables were small
    # (sequential scans, foreign-key checks): bench/auto_analyze.py has the figures
    return [
        "autovacuum is off: table statistics go stale as the tables grow and queries slow "
        "down; turn it on (docs/operations.md, Database size) or run ANALYZE after big imports"
    ]


def _delivery(request: Request) -> dict[str, Any]:
    state = request.app.state
    try:
        with state.session_factory() as session:
            read_only(session)
            statuses = destination_statuses(session, state.consortium, now=datetime.now(UTC))
    except Exception as exc:  # e.g. the schema is older than this code: say so, stay up
        return {"status": "degraded", "error": type(exc).__name__}
    background = getattr(state, "delivery", None)
    degraded = any(s.status == "degraded" for s in statuses)
    return {
        "status": "degraded" if degraded else "ok",
        "worker": "in-process" if background is not None else "external",
        "destinations": {s.id: s.as_dict() for s in statuses},
    }

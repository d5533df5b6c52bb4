"""``GET /health``: is the adapter able to take messages? (Docker and load balancers ask.)"""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from sqlalchemy import text
from starlette.responses import JSONResponse

from adapter import __version__

router = APIRouter(tags=["health"])


@router.get("/health")
def health(request: Request) -> JSONResponse:
    """``ok`` when the database answers; 503 ``down`` when it does not."""
    state = request.app.state
    started = time.perf_counter()
    checks: dict[str, dict[str, object]] = {}
    try:
        with state.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        checks["database"] = {"status": "ok",
                              "latency_ms": round((time.perf_counter() - started) * 1000, 2)}
    except Exception as exc:  # any driver error means: not able to store messages
        checks["database"] = {"status": "down", "error": type(exc).__name__}
    pipeline = state.pipeline
    checks["mappings"] = {"status": "ok", "sources": sorted(pipeline.loaded_sources())}
    status = "ok" if all(c["status"] == "ok" for c in checks.values()) else "down"
    return JSONResponse({"status": status, "version": __version__,
                         "started_at": state.started_at, "checks": checks},
                        status_code=200 if status == "ok" else 503)

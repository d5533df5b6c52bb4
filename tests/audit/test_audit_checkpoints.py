"""adapter serve signs checkpoints of the audit log by itself when it has a signing key."""

from __future__ import annotations

import time
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import text

from adapter.api.app import create_app
from adapter.audit.signing import new_key
from adapter.settings import Settings
from tests.audit.audit_support import check


def test_serve_signs_checkpoints_periodically(database_url: str, tmp_path: Path) -> None:
    key = new_key(tmp_path / "audit.pem")
    settings = Settings(
        database_url=database_url,
        audit_signing_key=tmp_path / "audit.pem",
        audit_checkpoint_minutes=0.005,  # every 0.3 s
    )
    app = create_app(settings)
    try:
        with TestClient(app):  # the lifespan runs: config.loaded is recorded, then signed
            factory = app.state.session_factory
            deadline = time.monotonic() + 60
            while True:
                with factory() as session:
                    made = session.execute(text("SELECT seq FROM audit_checkpoint")).scalars().all()
                if made or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
        assert made, "no checkpoint was signed"
        report = check(factory, public=key.public_key())
        assert report.ok and report.checkpoints >= 1
    finally:
        app.state.engine.dispose()

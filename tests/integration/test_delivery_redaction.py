"""A destination that quotes the request's headers in its error answer: what the adapter
stores of that answer, and shows at /deliveries/{id} and with ``adapter deliveries ID``,
carries no credential (Authorization values, Basic pairs, bearer and OAuth2 tokens, the
destination's configured secrets)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from adapter.consortium import Consortium
from adapter.delivery.service import build_worker
from adapter.delivery.worker import WorkerOptions
from adapter.store import outbox
from tests.integration import delivery_support as support
from tests.integration import test_cli
from tests.integration.test_cli import run
from tests.peers.fault_server import Answer, FaultServer

env = test_cli.env  # the CLI tests' fixture: ADAPTER_* settings for the test database

PASSWORD = "pw-S3cret-7781"
TOKEN = "static-token-9f3e2a61"


def _auth(kind: str, server: FaultServer) -> tuple[dict[str, Any], list[str]]:
    """The destination's auth settings and every form of its credential that must not be
    stored (what the server will see in the Authorization header, and the secrets)."""
    if kind == "basic":
        server.require_auth = ("basic", "adapter", PASSWORD)
        pair = base64.b64encode(f"adapter:{PASSWORD}".encode()).decode()
        return {"type": "basic", "username": "adapter", "password": PASSWORD}, [PASSWORD, pair]
    if kind == "bearer":
        server.require_auth = ("bearer", TOKEN)
        return {"type": "bearer", "token": TOKEN}, [TOKEN]
    server.require_auth = ("oauth2",)
    settings = {
        "type": "oauth2",
        "token_url": server.token_url,
        "client_id": server.client_id,
        "client_secret": server.client_secret,
    }
    # tok-1 is the access token the fault server issues first
    return settings, [server.client_secret, "Bearer tok-1", '"tok-1"']


def _worker(factory: sessionmaker[Session], server: FaultServer, auth: dict[str, Any]):
    data = support.consortium_data(server.base_url, retry={"max_attempts": 1})
    data["facilities"][0]["destinations"][0]["settings"]["auth"] = auth
    worker = build_worker(
        Consortium.model_validate(data), factory, worker_id="w1", options=WorkerOptions()
    )
    return worker


@pytest.mark.parametrize("kind", ["basic", "bearer", "oauth2"])
@pytest.mark.parametrize("status", [400, 503])
def test_echoed_credentials_are_not_stored_nor_shown(
    kind: str,
    status: int,
    fault_server: FaultServer,
    session_factory: sessionmaker[Session],
    client: TestClient,
    env: pytest.MonkeyPatch,
) -> None:
    auth, credentials = _auth(kind, fault_server)
    fault_server.plan(Answer(status, echo_headers=True))
    [outbox_id] = support.queue(session_factory, [support.observation("o1", None, "v1")])
    worker = _worker(session_factory, fault_server, auth)
    try:
        worker.process(support.DEST)
    finally:
        worker.close()

    # the destination did quote our Authorization header back
    [request] = [r for r in fault_server.requests if r.method == "PUT"]
    sent = request.headers["Authorization"]
    assert any(c in sent or c.strip('"') in sent for c in credentials)

    with session_factory() as session:
        row = outbox.get_delivery(session, outbox_id)
        attempts = outbox.attempts_of(session, outbox_id)
        stored = [
            row.last_error or "",
            *(a.error or "" for a in attempts),
            *(json.dumps(a.operation_outcome, ensure_ascii=False) for a in attempts),
            *(d.last_error or "" for d in outbox.destination_records(session)),
        ]
    assert attempts and attempts[0].operation_outcome is not None
    assert "cannot process the request" in attempts[0].error  # the answer itself is kept
    assert "[REDACTED-CREDENTIAL]" in json.dumps(attempts[0].operation_outcome)

    shown = client.get(f"/deliveries/{outbox_id}")
    assert shown.status_code == 200
    assert "[REDACTED-CREDENTIAL]" in shown.text
    cli = run("deliveries", outbox_id)
    assert cli.exit_code == 0, cli.output
    for text in [*stored, shown.text, cli.output]:
        leaked = [c for c in credentials if c in text]
        assert leaked == [], text
        assert "Basic " + base64.b64encode(b"adapter:").decode()[:6] not in text

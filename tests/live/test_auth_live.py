"""Authentication through the real server (``adapter serve``): the example consortium's
demo clients with secrets from the environment and a signing key from a file; and the
loud warning when authentication is off and the server listens beyond loopback."""

from __future__ import annotations

from pathlib import Path

import httpx

from adapter.auth.keys import new_key_file
from adapter.settings import PROJECT_ROOT
from tests.live.server import LiveServer

MESSAGE = PROJECT_ROOT / "fixtures" / "hl7v2" / "oru" / "std-hl7v2" / "two-orders.hl7"


def _token(server: LiveServer, client_id: str, secret: str) -> str:
    answer = httpx.post(
        server.url("/auth/token"),
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


def test_demo_clients_send_and_read_with_tokens(database_url: str, tmp_path: Path) -> None:
    key = tmp_path / "token-key.pem"
    new_key_file(key)
    env = {
        "ADAPTER_AUTH": "on",
        "ADAPTER_AUTH_SIGNING_KEY": str(key),
        "DEMO_SENDER_SECRET": "sender-secret-for-the-test",
        "DEMO_READER_SECRET": "reader-secret-for-the-test",
    }
    with LiveServer(database_url, tmp_path, env=env) as server:
        assert httpx.get(server.url("/fhir/Patient")).status_code == 401
        sender = _token(server, "demo-sender", env["DEMO_SENDER_SECRET"])
        sent = httpx.post(
            server.url("/ingest"),
            content=MESSAGE.read_bytes(),
            headers={
                "Authorization": f"Bearer {sender}",
                "X-Source-System": "std-hl7v2",
                "Content-Type": "application/hl7-v2",
            },
        )
        assert sent.status_code == 202, sent.text
        patient = next(r for r in sent.json()["resources"] if r.startswith("Patient/"))
        reader = {
            "Authorization": f"Bearer {_token(server, 'demo-reader', env['DEMO_READER_SECRET'])}"
        }
        assert httpx.get(server.url(f"/fhir/{patient}"), headers=reader).status_code == 200
        # the sender's token does not read, the reader's does not send
        assert (
            httpx.get(
                server.url("/fhir/Patient"), headers={"Authorization": f"Bearer {sender}"}
            ).status_code
            == 403
        )
        # the operator's variable is not set: it gets no token, and the log said so
        refused = httpx.post(
            server.url("/auth/token"),
            data={
                "grant_type": "client_credentials",
                "client_id": "demo-operator",
                "client_secret": "x",
            },
        )
        assert refused.status_code == 401
        log = server.log_text()
    assert "DEMO_OPERATOR_SECRET is not set" in log
    assert env["DEMO_READER_SECRET"] not in log and sender not in log


def test_serve_warns_loudly_with_auth_off_beyond_loopback(
    database_url: str, tmp_path: Path
) -> None:
    with LiveServer(database_url, tmp_path, args=["--host", "0.0.0.0"]) as server:
        assert httpx.get(server.url("/fhir/Patient")).status_code == 200
        log = server.log_text()
    assert "WARNING: ADAPTER_AUTH=off and listening on 0.0.0.0" in log
    with LiveServer(database_url, tmp_path) as server:
        log = server.log_text()
    assert "listening on loopback only" in log and "WARNING: ADAPTER_AUTH=off" not in log

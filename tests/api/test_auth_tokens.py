"""POST /auth/token and bearer tokens (issue 11 section 1): clients of the consortium file,
argon2 and environment secrets, JWT checks (signature, audience, issuer, expiry), the
failure limit (429 with Retry-After), and the audit records of issue and failure."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient
from sqlalchemy import select

from adapter.auth.keys import KeyRing, key_id, new_key_file
from adapter.auth.tokens import TokenService
from adapter.store.audit_log import AuditRecord
from tests.api.auth_helpers import ENV_NAME, auth_client, secret_of

FORM = {"grant_type": "client_credentials"}


def _ask(client: TestClient, client_id: str, secret: str) -> object:
    return client.post(
        "/auth/token", data={**FORM, "client_id": client_id, "client_secret": secret}
    )


def _actions(app, action: str) -> list[tuple[str, str | None]]:
    with app.state.session_factory() as session:
        rows = session.execute(
            select(AuditRecord.outcome, AuditRecord.client).where(AuditRecord.action == action)
        )
        return [(o, c) for o, c in rows]


def test_a_client_gets_a_short_lived_token_that_opens_the_api(
    database_url: str, tmp_path: Path
) -> None:
    with auth_client(database_url, tmp_path) as (app, tokens):
        answer = _ask(tokens.client, "county-reader", secret_of("county-reader"))
        assert answer.status_code == 200
        body = answer.json()
        assert set(body) == {"access_token", "token_type", "expires_in"}
        assert body["token_type"] == "Bearer" and body["expires_in"] == 900
        assert answer.headers["cache-control"] == "no-store"
        claims = jwt.decode(body["access_token"], options={"verify_signature": False})
        assert claims["sub"] == "county-reader"
        assert claims["aud"] == "yigongti-fhir-adapter"
        assert claims["exp"] - claims["iat"] == 900
        assert jwt.get_unverified_header(body["access_token"])["alg"] == "EdDSA"
        headers = {"Authorization": f"Bearer {body['access_token']}"}
        assert tokens.client.get("/fhir/Patient", headers=headers).status_code == 200
        assert ("success", "county-reader") in _actions(app, "auth.token")


def test_http_basic_client_authentication_is_accepted(database_url: str, tmp_path: Path) -> None:
    with auth_client(database_url, tmp_path) as (_app, tokens):
        answer = tokens.client.post(
            "/auth/token", data=FORM, auth=("county-reader", secret_of("county-reader"))
        )
        assert answer.status_code == 200, answer.text


def test_wrong_secret_unknown_client_and_bad_grant_are_refused_and_recorded(
    database_url: str, tmp_path: Path
) -> None:
    with auth_client(database_url, tmp_path) as (app, tokens):
        wrong = _ask(tokens.client, "county-reader", "guess")
        unknown = _ask(tokens.client, "nobody", "guess")
        assert wrong.status_code == unknown.status_code == 401
        # the same answer: which client ids exist is not said
        assert (
            wrong.json()
            == unknown.json()
            == {
                "error": "invalid_client",
                "error_description": "unknown client or wrong secret",
            }
        )
        grant = tokens.client.post(
            "/auth/token", data={"grant_type": "password", "client_id": "x", "client_secret": "y"}
        )
        assert grant.status_code == 400 and grant.json()["error"] == "unsupported_grant_type"
        failures = [c for o, c in _actions(app, "auth.token") if o == "failure"]
        assert failures.count("county-reader") == 1 and "nobody" in failures
        with app.state.session_factory() as session:
            texts = session.scalars(select(AuditRecord.body)).all()
        assert not any("guess" in text for text in texts)  # never the secret given


def test_failures_per_client_and_address_are_limited_with_retry_after(
    database_url: str, tmp_path: Path
) -> None:
    with auth_client(database_url, tmp_path, auth_max_failures=3) as (app, tokens):
        for _ in range(3):
            assert _ask(tokens.client, "county-reader", "guess").status_code == 401
        limited = _ask(tokens.client, "county-reader", secret_of("county-reader"))
        assert limited.status_code == 429  # even the right secret, until the window passes
        assert 1 <= int(limited.headers["retry-after"]) <= 300
        # another client from the same address is not held back
        assert (
            _ask(tokens.client, "county-operator", secret_of("county-operator")).status_code == 200
        )
        assert ("failure", "county-reader") in _actions(app, "auth.token")


def test_a_secret_named_by_environment_variable(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_NAME, "from-the-environment")
    with auth_client(database_url, tmp_path) as (_app, tokens):
        assert _ask(tokens.client, "env-reader", "from-the-environment").status_code == 200
        assert _ask(tokens.client, "env-reader", "other").status_code == 401


def test_an_unset_environment_secret_gives_no_token(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENV_NAME, raising=False)
    with auth_client(database_url, tmp_path) as (_app, tokens):
        assert _ask(tokens.client, "env-reader", "").status_code == 400
        assert _ask(tokens.client, "env-reader", "anything").status_code == 401


def _service(app, **change: object) -> TokenService:
    tokens: TokenService = app.state.auth.tokens
    fields = {
        "keys": tokens.keys,
        "issuer": tokens.issuer,
        "audience": tokens.audience,
        "lifetime": tokens.lifetime,
    }
    return TokenService(**{**fields, **change})  # type: ignore[arg-type]


def _other_keys() -> KeyRing:
    key = Ed25519PrivateKey.generate()
    kid = key_id(key.public_key())
    return KeyRing(key, kid, {kid: key.public_key()}, True)


def test_expired_foreign_wrong_audience_and_tampered_tokens_are_refused(
    database_url: str, tmp_path: Path
) -> None:
    with auth_client(database_url, tmp_path) as (app, tokens):
        client = app.state.consortium.client("county-reader")
        good, _ = _service(app).issue(client)
        expired, _ = _service(app).issue(client, now=datetime.now(UTC) - timedelta(hours=1))
        foreign, _ = _service(app, keys=_other_keys()).issue(client)
        audience, _ = _service(app, audience="another-server").issue(client)
        issuer, _ = _service(app, issuer="someone-else").issue(client)
        head, _payload, signature = good.split(".")
        claims = jwt.decode(good, options={"verify_signature": False})
        claims["roles"] = ["reader", "operator"]
        forged_payload = jwt.utils.base64url_encode(json.dumps(claims).encode()).decode()
        forged = f"{head}.{forged_payload}.{signature}"
        none_alg = jwt.encode(claims, None, algorithm="none")
        for bad, says in [
            (expired, "expired"),
            (foreign, "not signed by a key of this adapter"),
            (audience, "another audience"),
            (issuer, "another issuer"),
            (forged, "signature"),
            (none_alg, "not signed by a key"),
            ("not-a-token", "not a JWT"),
        ]:
            answer = tokens.client.get("/fhir/Patient", headers={"Authorization": f"Bearer {bad}"})
            assert answer.status_code == 401, says
            assert answer.headers["www-authenticate"].startswith("Bearer ")
            assert 'error="invalid_token"' in answer.headers["www-authenticate"]
            assert says in answer.json()["issue"][0]["diagnostics"]
        ok = tokens.client.get("/fhir/Patient", headers={"Authorization": f"Bearer {good}"})
        assert ok.status_code == 200


def test_a_rotated_key_s_tokens_are_accepted_while_listed(
    database_url: str, tmp_path: Path
) -> None:
    old, new = tmp_path / "old.pem", tmp_path / "new.pem"
    new_key_file(old)
    new_key_file(new)
    with auth_client(database_url, tmp_path, auth_signing_key=old) as (_app, tokens):
        old_token = tokens.get("county-reader")
    (tmp_path / "consortium.yaml").unlink()
    with auth_client(database_url, tmp_path, auth_signing_key=new, auth_verify_keys=[old]) as (
        _app,
        tokens,
    ):
        headers = {"Authorization": f"Bearer {old_token}"}
        assert tokens.client.get("/fhir/Patient", headers=headers).status_code == 200
    (tmp_path / "consortium.yaml").unlink()
    with auth_client(database_url, tmp_path, auth_signing_key=new) as (_app, tokens):
        headers = {"Authorization": f"Bearer {old_token}"}
        assert tokens.client.get("/fhir/Patient", headers=headers).status_code == 401


def test_a_removed_client_s_token_stops_working(database_url: str, tmp_path: Path) -> None:
    key = tmp_path / "key.pem"
    new_key_file(key)
    with auth_client(database_url, tmp_path, auth_signing_key=key) as (app, tokens):
        headers = tokens.headers("county-reader")
        clients = [c for c in app.state.consortium.clients if c.id != "county-reader"]
        app.state.consortium = app.state.consortium.model_copy(update={"clients": clients})
        answer = tokens.client.get("/fhir/Patient", headers=headers)
        assert answer.status_code == 401
        assert "no longer" in answer.json()["issue"][0]["diagnostics"]


def test_with_auth_off_there_are_no_tokens_and_no_checks(client: TestClient) -> None:
    assert client.get("/fhir/Patient").status_code == 200
    answer = client.post("/auth/token", data={**FORM, "client_id": "a", "client_secret": "b"})
    assert answer.status_code == 404

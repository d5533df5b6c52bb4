"""Signed JWT client assertions at POST /auth/token (RFC 7523 as SMART Backend Services
uses them: ``private_key_jwt``), the adapter's JWK Set and SMART discovery document.

The clients' key pairs are made here; only the public halves go into the consortium file
(inline ``jwks`` and a ``jwks_file`` beside it). Every refusal the checks make is tried:
replayed ``jti``, wrong ``aud``, expiry too far ahead, expired, another key, a symmetric
algorithm, ``iss`` not the client."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi.testclient import TestClient
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm
from sqlalchemy import select

from adapter.api.app import create_app
from adapter.settings import Settings
from adapter.store.audit_log import AuditRecord
from tests.api.auth_helpers import COUNTY, SHIQIAO, consortium_with_clients

TOKEN_URL = "http://testserver/auth/token"
ASSERTION = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
EC_KEY = ec.generate_private_key(ec.SECP384R1())
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_KEY = ec.generate_private_key(ec.SECP384R1())


def _public_jwk(key: Any, kid: str) -> dict[str, Any]:
    algorithm = ECAlgorithm if isinstance(key, ec.EllipticCurvePrivateKey) else RSAAlgorithm
    return {**algorithm.to_jwk(key.public_key(), as_dict=True), "kid": kid}


@pytest.fixture
def app_client(database_url: str, tmp_path: Path) -> Iterator[tuple[Any, TestClient]]:
    config = consortium_with_clients(tmp_path)
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "county-app.jwks.json").write_text(
        json.dumps({"keys": [_public_jwk(RSA_KEY, "rsa-1")]})
    )
    inline = json.dumps({"keys": [_public_jwk(EC_KEY, "ec-1")]})
    extra = (
        "  - id: shiqiao-backend\n"
        f"    facility: {SHIQIAO}\n"
        "    roles: [reader]\n"
        f"    jwks: {inline}\n"
        "  - id: county-app\n"
        f"    facility: {COUNTY}\n"
        "    roles: [reader]\n"
        "    jwks_file: keys/county-app.jwks.json\n"
    )
    config.write_text(config.read_text(encoding="utf-8") + extra, encoding="utf-8")
    app = create_app(Settings(database_url=database_url, config=config, auth=True))
    try:
        with TestClient(app) as client:
            yield app, client
    finally:
        app.state.engine.dispose()


def _assertion(
    client_id: str = "shiqiao-backend",
    key: Any = EC_KEY,
    algorithm: str = "ES384",
    kid: str | None = "ec-1",
    **claims: Any,
) -> str:
    now = int(time.time())
    body = {
        "iss": client_id,
        "sub": client_id,
        "aud": TOKEN_URL,
        "exp": now + 240,
        "jti": str(uuid.uuid4()),
        **claims,
    }
    return jwt.encode(body, key, algorithm=algorithm, headers={"kid": kid} if kid else None)


def _ask(client: TestClient, assertion: str, **form: str) -> Any:
    return client.post(
        "/auth/token",
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": ASSERTION,
            "client_assertion": assertion,
            **form,
        },
    )


def test_an_es384_assertion_gets_a_token_that_opens_the_api(app_client) -> None:
    app, client = app_client
    answer = _ask(client, _assertion())
    assert answer.status_code == 200, answer.text
    token = answer.json()["access_token"]
    read = client.get("/fhir/Patient", headers={"Authorization": f"Bearer {token}"})
    assert read.status_code == 200
    with app.state.session_factory() as session:
        body = session.scalars(
            select(AuditRecord.body).where(
                AuditRecord.action == "auth.token", AuditRecord.outcome == "success"
            )
        ).one()
    text = body.decode() if isinstance(body, bytes) else str(body)
    assert "private_key_jwt" in text and "shiqiao-backend" in text


def test_an_rs384_assertion_with_keys_from_a_file(app_client) -> None:
    _, client = app_client
    assertion = _assertion("county-app", RSA_KEY, "RS384", "rsa-1")
    answer = _ask(client, assertion, client_id="county-app")
    assert answer.status_code == 200, answer.text


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda: _assertion(aud="https://elsewhere/auth/token"), "aud must be this token"),
        (lambda: _assertion(exp=int(time.time()) + 3600), "more than five minutes ahead"),
        (lambda: _assertion(exp=int(time.time()) - 120), "expired"),
        (lambda: _assertion(key=OTHER_KEY), "not valid"),
        (lambda: _assertion(sub="county-app"), "sub must be the client_id"),
        (lambda: _assertion(kid="nobody"), "no registered key has the assertion's kid"),
        (
            lambda: jwt.encode(
                {
                    "iss": "shiqiao-backend",
                    "sub": "shiqiao-backend",
                    "aud": TOKEN_URL,
                    "exp": int(time.time()) + 60,
                    "jti": "x",
                },
                "a shared secret of 32 bytes at least!!",
                algorithm="HS256",
            ),
            "alg must be one of",
        ),
        (lambda: _assertion("county-reader"), "without registered public keys"),
        (lambda: "not.a.jwt", "not a JWT"),
    ],
)
def test_bad_assertions_are_refused_with_the_reason(app_client, make, says: str) -> None:
    _, client = app_client
    answer = _ask(client, make())
    assert answer.status_code == 401, answer.text
    assert answer.json()["error"] == "invalid_client"
    assert says in answer.json()["error_description"]


def test_an_assertion_is_used_once(app_client) -> None:
    _, client = app_client
    assertion = _assertion()
    assert _ask(client, assertion).status_code == 200
    again = _ask(client, assertion)
    assert again.status_code == 401
    assert "used already" in again.json()["error_description"]


def test_client_id_must_be_the_assertion_s_issuer(app_client) -> None:
    _, client = app_client
    answer = _ask(client, _assertion(), client_id="county-app")
    assert answer.status_code == 401
    assert "iss must be the client_id" in answer.json()["error_description"]


def test_a_wrong_assertion_type_is_a_bad_request(app_client) -> None:
    _, client = app_client
    answer = client.post(
        "/auth/token",
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": "urn:something:else",
            "client_assertion": _assertion(),
        },
    )
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_request"


def test_jwks_publishes_the_keys_that_verify_the_tokens(app_client) -> None:
    _, client = app_client
    token = _ask(client, _assertion()).json()["access_token"]
    keys = client.get("/.well-known/jwks.json")
    assert keys.status_code == 200
    kid = jwt.get_unverified_header(token)["kid"]
    jwk = next(k for k in keys.json()["keys"] if k["kid"] == kid)
    assert "d" not in jwk  # the public half only
    public = OKPAlgorithm.from_jwk(jwk)
    claims = jwt.decode(token, public, algorithms=["EdDSA"], audience="yigongti-fhir-adapter")
    assert claims["sub"] == "shiqiao-backend"


def test_smart_configuration_says_how_to_get_a_token(app_client) -> None:
    _, client = app_client
    found = client.get("/.well-known/smart-configuration").json()
    assert found["token_endpoint"] == TOKEN_URL
    assert "private_key_jwt" in found["token_endpoint_auth_methods_supported"]
    assert "ES384" in found["token_endpoint_auth_signing_alg_values_supported"]
    assert found["jwks_uri"].endswith("/.well-known/jwks.json")


def _load_error(tmp_path: Path, extra: str) -> str:
    from adapter.consortium import load_consortium
    from adapter.errors import ConfigError

    config = consortium_with_clients(tmp_path)
    config.write_text(config.read_text(encoding="utf-8") + extra, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_consortium(config)
    return caught.value.message


def test_bad_client_keys_stop_start_up_with_their_line(tmp_path: Path) -> None:
    missing = _load_error(
        tmp_path,
        f"  - id: x\n    facility: {COUNTY}\n    roles: [reader]\n    jwks_file: nowhere.json\n",
    )
    assert ".jwks_file: nowhere.json: No such file" in missing
    assert "consortium.yaml:" in missing  # the file and its line
    private = {**ECAlgorithm.to_jwk(EC_KEY, as_dict=True), "kid": "p"}
    leaked = _load_error(
        tmp_path,
        f"  - id: x\n    facility: {COUNTY}\n    roles: [reader]\n"
        f"    jwks: {json.dumps({'keys': [private]})}\n",
    )
    assert "public keys only" in leaked
    nothing = _load_error(tmp_path, f"  - id: x\n    facility: {COUNTY}\n    roles: [reader]\n")
    assert "certificate (mTLS)" in nothing

"""Credentials and TLS for HTTP connectors: bearer, basic, OAuth2 client credentials, mTLS.

Secrets need not be written into the consortium file: every secret setting ``x`` may be
given instead as ``x_env`` (the name of an environment variable holding it) or ``x_file``
(a file holding it, as container secrets are mounted). They are resolved once, when the
connector is built, so a missing variable stops start-up naming the connector and key.
This module and ``adapter.settings`` are the only readers of the environment: connector
secrets have names chosen by the operator, which a settings class cannot declare.
"""

from __future__ import annotations

import base64
import os
import ssl
import threading
import time
from collections.abc import Generator
from pathlib import Path
from typing import Annotated, Any, Literal

import httpx
from pydantic import Field, model_validator

from adapter.connectors.base import ConnectorSettings
from adapter.errors import ConfigError, RetriableDeliveryError


# -- secrets ----------------------------------------------------------------------------------
def resolve_secret(
    model: ConnectorSettings, name: str, *, where: str, required: bool = True
) -> str | None:
    """The value of secret ``name`` of ``model``: literal, ``<name>_env`` or ``<name>_file``."""
    literal = getattr(model, name, None)
    env = getattr(model, f"{name}_env", None)
    file = getattr(model, f"{name}_file", None)
    given = [
        k
        for k, v in ((name, literal), (f"{name}_env", env), (f"{name}_file", file))
        if v is not None
    ]
    if len(given) > 1:
        raise ConfigError(f"give only one of {', '.join(given)}", key=f"{where}.{given[1]}")
    if literal is not None:
        return str(literal)
    if env is not None:
        value = os.environ.get(env)
        if value is None or value == "":
            raise ConfigError(f"environment variable {env} is not set", key=f"{where}.{name}_env")
        return value
    if file is not None:
        try:
            return Path(file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(
                f"cannot read {file}: {exc.strerror}", key=f"{where}.{name}_file"
            ) from None
    if required:
        raise ConfigError(f"missing: give {name}, {name}_env or {name}_file", key=f"{where}.{name}")
    return None


# -- settings models --------------------------------------------------------------------------
class NoAuth(ConnectorSettings):
    type: Literal["none"] = "none"


class BearerAuth(ConnectorSettings):
    type: Literal["bearer"]
    token: str | None = None
    token_env: str | None = None
    token_file: str | None = None


class BasicAuth(ConnectorSettings):
    type: Literal["basic"]
    username: str
    password: str | None = None
    password_env: str | None = None
    password_file: str | None = None


class OAuth2Auth(ConnectorSettings):
    """OAuth2 client credentials grant (RFC 6749 section 4.4)."""

    type: Literal["oauth2"]
    token_url: str
    client_id: str
    client_secret: str | None = None
    client_secret_env: str | None = None
    client_secret_file: str | None = None
    scope: str | None = None
    audience: str | None = None
    # client_secret_basic (HTTP basic, the RFC's default) or client_secret_post (in the form)
    client_auth: Literal["basic", "post"] = "basic"
    # renew this long before the token's expires_in runs out
    refresh_margin_seconds: float = Field(30.0, ge=0)


AuthSettings = Annotated[NoAuth | BearerAuth | BasicAuth | OAuth2Auth, Field(discriminator="type")]


class TlsSettings(ConnectorSettings):
    """TLS for https URLs. Verification is on unless ``verify: false`` is written out."""

    verify: bool = True
    ca_file: str | None = Field(
        None,
        description="CA bundle (PEM) to trust instead of the system's, e.g. the hospital's own CA",
    )
    client_cert: str | None = Field(None, description="client certificate (PEM), for mutual TLS")
    client_key: str | None = Field(None, description="its private key (PEM)")
    client_key_password_env: str | None = None

    @model_validator(mode="after")
    def _files(self) -> TlsSettings:
        if self.client_key and not self.client_cert:
            raise ValueError("client_key needs client_cert")
        for name in ("ca_file", "client_cert", "client_key"):
            value = getattr(self, name)
            if value is not None and not Path(value).is_file():
                raise ValueError(f"{name}: no file {value}")
        return self


def ssl_context(tls: TlsSettings, *, where: str) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=tls.ca_file)
    if not tls.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if tls.client_cert:
        password = None
        if tls.client_key_password_env:
            password = os.environ.get(tls.client_key_password_env)
            if password is None:
                raise ConfigError(
                    f"environment variable {tls.client_key_password_env} is not set",
                    key=f"{where}.tls.client_key_password_env",
                )
        try:
            context.load_cert_chain(tls.client_cert, tls.client_key, password)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"cannot load the client certificate: {exc}", key=f"{where}.tls.client_cert"
            ) from None
    return context


# -- httpx auth -------------------------------------------------------------------------------
class StaticAuth(httpx.Auth):
    """A fixed Authorization header (bearer token or basic credentials)."""

    def __init__(self, header: str, secrets: tuple[str, ...] = ()) -> None:
        self._header = header
        self._secrets = secrets

    def secrets(self) -> list[str]:
        """What must never be stored or shown: the credential and its parts."""
        return [self._header.split(" ", 1)[-1], *self._secrets]

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self._header
        yield request


class TokenSource:
    """Fetches and caches an OAuth2 client-credentials access token (thread-safe).

    The token is reused until ``refresh_margin_seconds`` before it expires, and dropped at
    once when a server answers 401 with it (revoked or expired early).
    """

    def __init__(
        self,
        settings: OAuth2Auth,
        secret: str,
        *,
        verify: ssl.SSLContext | bool,
        timeout: httpx.Timeout,
    ) -> None:
        self.settings = settings
        self._secret = secret
        self._client = httpx.Client(verify=verify, timeout=timeout)
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires_at = 0.0
        self.fetched = 0  # how many tokens were fetched (for tests and metrics)

    def token(self) -> str:
        with self._lock:
            if self._token is None or time.monotonic() >= self._expires_at:
                self._token, lifetime = self._fetch()
                margin = min(self.settings.refresh_margin_seconds, lifetime / 2)
                self._expires_at = time.monotonic() + lifetime - margin
            return self._token

    def secrets(self) -> list[str]:
        """The client secret and the access token in use (never to be stored or shown)."""
        with self._lock:
            return [self._secret, *([self._token] if self._token else [])]

    def invalidate(self, token: str) -> None:
        with self._lock:
            if self._token == token:
                self._token = None

    def _fetch(self) -> tuple[str, float]:
        s = self.settings
        form: dict[str, str] = {"grant_type": "client_credentials"}
        if s.scope:
            form["scope"] = s.scope
        if s.audience:
            form["audience"] = s.audience
        headers = {"Accept": "application/json"}
        if s.client_auth == "basic":
            pair = f"{_form_quote(s.client_id)}:{_form_quote(self._secret)}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        else:
            form["client_id"] = s.client_id
            form["client_secret"] = self._secret
        try:
            response = self._client.post(s.token_url, data=form, headers=headers)
        except httpx.HTTPError as exc:
            raise RetriableDeliveryError(
                f"token endpoint {s.token_url} unreachable: {type(exc).__name__}"
            ) from None
        if response.status_code != 200:
            raise RetriableDeliveryError(
                f"token endpoint {s.token_url} answered {response.status_code}",
                status=response.status_code,
            )
        try:
            body: dict[str, Any] = response.json()
            token = str(body["access_token"])
        except (ValueError, KeyError, TypeError):
            raise RetriableDeliveryError(
                f"token endpoint {s.token_url} gave no access_token"
            ) from None
        self.fetched += 1
        try:
            lifetime = float(body.get("expires_in", 3600))
        except (TypeError, ValueError):
            lifetime = 3600.0
        return token, max(lifetime, 1.0)

    def close(self) -> None:
        self._client.close()


def _form_quote(value: str) -> str:
    # RFC 6749 2.3.1: client id and secret are form-urlencoded before the basic encoding
    from urllib.parse import quote_plus

    return quote_plus(value)


class OAuth2ClientCredentials(httpx.Auth):
    """Bearer token from a :class:`TokenSource`; on 401 one retry with a fresh token."""

    def __init__(self, tokens: TokenSource) -> None:
        self.tokens = tokens

    def secrets(self) -> list[str]:
        return self.tokens.secrets()

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self.tokens.token()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            self.tokens.invalidate(token)
            request.headers["Authorization"] = f"Bearer {self.tokens.token()}"
            yield request


def build_auth(
    auth: NoAuth | BearerAuth | BasicAuth | OAuth2Auth,
    *,
    where: str,
    verify: ssl.SSLContext | bool,
    timeout: httpx.Timeout,
) -> httpx.Auth | None:
    """The httpx auth for the settings; secrets resolved now (ConfigError if missing)."""
    here = f"{where}.auth"
    if isinstance(auth, BearerAuth):
        return StaticAuth(f"Bearer {resolve_secret(auth, 'token', where=here)}")
    if isinstance(auth, BasicAuth):
        password = resolve_secret(auth, "password", where=here) or ""
        pair = f"{auth.username}:{password}".encode()
        return StaticAuth("Basic " + base64.b64encode(pair).decode(), (password,))
    if isinstance(auth, OAuth2Auth):
        secret = resolve_secret(auth, "client_secret", where=here) or ""
        return OAuth2ClientCredentials(TokenSource(auth, secret, verify=verify, timeout=timeout))
    return None

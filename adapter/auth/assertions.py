"""Signed JWT client assertions (RFC 7523, as SMART Backend Services uses them): a client
proves who it is with a short JWT signed by its private key, whose public half is in the
consortium file (``jwks`` or ``jwks_file``). The adapter never holds the client's secret.

Checked: the algorithm is one of :data:`ALGORITHMS` and fits the key (never the header's
free choice), the key by ``kid``, ``iss`` = ``sub`` = the client id, ``aud`` = this token
endpoint's URL, ``exp`` at most five minutes ahead, and ``jti`` not seen before while the
assertion is valid (a replayed assertion is refused). The ``jti`` memory is per process:
run one ``adapter serve`` process per port, as the docs say, or a replay could reach
another process within the assertion's five minutes.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import jwt

from adapter.consortium import Client, Consortium
from adapter.errors import ConfigError

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# SMART Backend Services requires RS384 and ES384; the others are as strong
ALGORITHMS = ("RS384", "ES384", "RS256", "ES256", "PS384", "EdDSA")
MAX_LIFETIME_SECONDS = 300
LEEWAY_SECONDS = 30


class AssertionRefused(Exception):
    """The assertion cannot be accepted; the message is safe to answer."""


def key_set(client: Client) -> jwt.PyJWKSet | None:
    if client.jwks is None:
        return None
    try:
        found = jwt.PyJWKSet.from_dict(client.jwks)
    except jwt.PyJWTError as exc:
        raise ConfigError(
            f"client {client.id}: its jwks holds no usable public key ({exc})"
        ) from None
    for key in found.keys:
        if key.key_type == "oct" or hasattr(key.key, "private_bytes"):
            raise ConfigError(
                f"client {client.id}: jwks must hold public keys only "
                "(a private or symmetric key was found)"
            )
    return found


class Assertions:
    """The clients' public keys (read at start-up) and the ``jti`` values seen."""

    def __init__(self, consortium: Consortium) -> None:
        self._keys: dict[str, jwt.PyJWKSet] = {}
        for client in consortium.clients:
            found = key_set(client)
            if found is not None:
                self._keys[client.id] = found
        self._seen: dict[str, float] = {}  # "client jti" -> when it may be forgotten
        self._lock = threading.Lock()

    def check(
        self, assertion: str, consortium: Consortium, audiences: list[str], given_id: str
    ) -> Client:
        try:
            header = jwt.get_unverified_header(assertion)
            unverified = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise AssertionRefused("client_assertion is not a JWT") from None
        issuer = unverified.get("iss")
        if not isinstance(issuer, str) or (given_id and given_id != issuer):
            raise AssertionRefused("the assertion's iss must be the client_id")
        client = consortium.client(issuer)
        keys = self._keys.get(issuer)
        if client is None or keys is None:
            raise AssertionRefused("unknown client, or one without registered public keys")
        algorithm = header.get("alg")
        if algorithm not in ALGORITHMS:
            raise AssertionRefused(f"alg must be one of {', '.join(ALGORITHMS)}")
        key = _pick(keys, header.get("kid"))
        try:
            claims = jwt.decode(
                assertion,
                key.key,
                algorithms=[algorithm],
                audience=audiences,
                issuer=client.id,
                leeway=LEEWAY_SECONDS,
                options={"require": ["iss", "sub", "aud", "exp", "jti"]},
            )
        except jwt.ExpiredSignatureError:
            raise AssertionRefused("the assertion has expired") from None
        except jwt.InvalidAudienceError:
            raise AssertionRefused("the assertion's aud must be this token endpoint") from None
        except jwt.PyJWTError as exc:
            raise AssertionRefused(f"the assertion is not valid ({type(exc).__name__})") from None
        if claims["sub"] != client.id:
            raise AssertionRefused("the assertion's sub must be the client_id")
        now = time.time()
        expires = float(claims["exp"])
        if expires > now + MAX_LIFETIME_SECONDS + LEEWAY_SECONDS:
            raise AssertionRefused("the assertion's exp is more than five minutes ahead")
        self._remember(f"{client.id} {claims['jti']}", expires + LEEWAY_SECONDS, now)
        return client

    def _remember(self, seen: str, until: float, now: float) -> None:
        with self._lock:
            for old in [k for k, t in self._seen.items() if t < now]:
                del self._seen[old]
            if seen in self._seen:
                raise AssertionRefused("this assertion (jti) was used already")
            self._seen[seen] = until


def _pick(keys: jwt.PyJWKSet, kid: Any) -> jwt.PyJWK:
    if isinstance(kid, str):
        for key in keys.keys:
            if key.key_id == kid:
                return key
        raise AssertionRefused("no registered key has the assertion's kid")
    if len(keys.keys) == 1:
        return keys.keys[0]
    raise AssertionRefused("the assertion names no kid and the client has several keys")

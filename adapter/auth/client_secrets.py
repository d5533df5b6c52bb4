"""Client secrets: checked against an argon2 hash (argon2-cffi), or against the value of
the environment variable the consortium file names (``secret: env:NAME``), read once at
start-up. A secret is never logged, stored or compared by hand (``hmac.compare_digest``)."""

from __future__ import annotations

import hashlib
import hmac
import logging
import os

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from adapter.consortium import Client, Consortium

log = logging.getLogger(__name__)
_hasher = PasswordHasher()  # argon2id with the library's current (RFC 9106) parameters


def hash_secret(secret: str) -> str:
    """The string to put under ``secret_hash:`` (``adapter auth hash-secret``)."""
    return _hasher.hash(secret)


_DUMMY_HASH = _hasher.hash("no client has this secret")


def _check_hash(hashed: str, given: str) -> bool:
    try:
        return _hasher.verify(hashed, given)
    except (VerificationError, InvalidHashError):
        return False


class Secrets:
    """What each client's secret is checked against, resolved at start-up."""

    def __init__(self, consortium: Consortium) -> None:
        # env secrets are kept as sha256 digests: compared in constant time, never echoed
        self._env: dict[str, bytes | None] = {}
        for client in consortium.clients:
            if client.secret is not None:
                name = client.secret.removeprefix("env:")
                value = os.environ.get(name)
                if not value:
                    log.warning(
                        "client %s: environment variable %s is not set; it cannot get tokens",
                        client.id,
                        name,
                    )
                self._env[client.id] = hashlib.sha256(value.encode()).digest() if value else None

    def check(self, client: Client | None, given: str) -> bool:
        if client is None:
            # as slow as a wrong secret: the answer time does not say which ids exist
            _check_hash(_DUMMY_HASH, given)
            return False
        if client.secret_hash is not None:
            return _check_hash(client.secret_hash, given)
        expected = self._env.get(client.id)
        if expected is None:
            return False
        return hmac.compare_digest(expected, hashlib.sha256(given.encode()).digest())

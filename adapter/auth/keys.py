"""The key that signs access tokens (Ed25519, EdDSA in JWT terms).

``ADAPTER_AUTH_SIGNING_KEY`` names a PEM file (``adapter auth keygen`` makes one). Unset,
a key is made at start-up and kept in memory only: fine for a trial, but every token dies
with the process and two processes do not accept each other's tokens. Rotation: make a new
key, point ``ADAPTER_AUTH_SIGNING_KEY`` at it and list the old key's public half in
``ADAPTER_AUTH_VERIFY_KEYS`` until the last token it signed has expired.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from adapter.errors import ConfigError
from adapter.settings import Settings

log = logging.getLogger(__name__)


def key_id(public: Ed25519PublicKey) -> str:
    """A short, stable name of a public key (the token header's ``kid``)."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.urlsafe_b64encode(hashlib.sha256(raw).digest()[:12]).decode().rstrip("=")


@dataclass(frozen=True)
class KeyRing:
    signing: Ed25519PrivateKey
    signing_id: str
    verifying: dict[str, Ed25519PublicKey]  # kid -> key: the signing key's and earlier ones
    ephemeral: bool  # made at start-up, not read from a file


def new_key_file(path: Path) -> str:
    """Write a new private key (PEM, PKCS#8, owner-only); answer its key id."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    return key_id(key.public_key())


def _load(path: Path, what: str) -> Ed25519PrivateKey | Ed25519PublicKey:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{what} {path}: {exc.strerror or type(exc).__name__}") from None
    try:
        key = (
            serialization.load_pem_private_key(data, password=None)
            if b"PRIVATE KEY" in data
            else serialization.load_pem_public_key(data)
        )
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{what} {path}: not a PEM key ({type(exc).__name__})") from None
    if not isinstance(key, Ed25519PrivateKey | Ed25519PublicKey):
        raise ConfigError(f"{what} {path}: not an Ed25519 key")
    return key


def load_keys(settings: Settings) -> KeyRing:
    """The signing key and every key whose tokens are accepted; a bad file stops start-up."""
    if settings.auth_signing_key is None:
        signing = Ed25519PrivateKey.generate()
        ephemeral = True
    else:
        loaded = _load(settings.auth_signing_key, "ADAPTER_AUTH_SIGNING_KEY")
        if not isinstance(loaded, Ed25519PrivateKey):
            raise ConfigError(
                f"ADAPTER_AUTH_SIGNING_KEY {settings.auth_signing_key}: a private key is needed"
            )
        signing, ephemeral = loaded, False
    signing_id = key_id(signing.public_key())
    verifying = {signing_id: signing.public_key()}
    for path in settings.auth_verify_keys:
        key = _load(path, "ADAPTER_AUTH_VERIFY_KEYS")
        public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
        verifying[key_id(public)] = public
    return KeyRing(signing, signing_id, verifying, ephemeral)

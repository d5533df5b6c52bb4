"""Signed checkpoints of the audit log (Ed25519, the ``cryptography`` library).

A checkpoint is the statement ``{"log": "adapter-audit", "seq": n, "hash": h, "made_at":
t, "key_id": k}`` (canonical JSON) and its Ed25519 signature. It says: the log had ``n``
records and the last one's chain hash was ``h``. Kept in audit_checkpoint and exported
(``adapter audit checkpoints --export``) to somewhere the adapter's database users cannot
write (another facility, a WORM bucket, a printed daily report): ``adapter audit verify
--checkpoints FILE`` then finds a rewritten or truncated log even if the audit tables were
rewritten whole. docs/audit.md, "Keys", says how the key is made, kept and rotated.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from adapter.audit.chain import canonical
from adapter.errors import ConfigError
from adapter.fhir.dates import format_instant

LOG_NAME = "adapter-audit"


def new_key(path: Path) -> Ed25519PrivateKey:
    """Write a new private key to ``path`` (PEM, PKCS#8, readable by its owner only)."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    return key


def load_private(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(f"audit signing key {path}: {type(exc).__name__}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"audit signing key {path}: not an Ed25519 key")
    return key


def load_public(path: Path) -> Ed25519PublicKey:
    """A public key file, or the public half of a private key file."""
    data = path.read_bytes()
    if b"PRIVATE KEY" in data:
        return load_private(path).public_key()
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"audit public key {path}: {type(exc).__name__}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError(f"audit public key {path}: not an Ed25519 key")
    return key


def public_pem(key: Ed25519PublicKey) -> str:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def key_id(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Checkpoint:
    seq: int
    hash: str
    made_at: datetime
    key_id: str
    statement: str
    signature: str  # base64

    def as_json(self) -> dict[str, Any]:
        return {"statement": self.statement, "signature": self.signature}


def sign(key: Ed25519PrivateKey, *, seq: int, head: str, made_at: datetime) -> Checkpoint:
    kid = key_id(key.public_key())
    statement = canonical(
        {
            "log": LOG_NAME,
            "seq": seq,
            "hash": head,
            "made_at": format_instant(made_at),
            "key_id": kid,
        }
    )
    signature = base64.b64encode(key.sign(statement.encode())).decode()
    return Checkpoint(seq, head, made_at, kid, statement, signature)


def sign_text(key: Ed25519PrivateKey, statement: str) -> tuple[str, str]:
    """(base64 signature, key id) of ``statement``."""
    return base64.b64encode(key.sign(statement.encode())).decode(), key_id(key.public_key())


def check(
    statement: str, signature: str, public: Ed25519PublicKey, *, log: str = LOG_NAME
) -> dict[str, Any] | None:
    """The statement's fields if ``signature`` is ``public``'s over it and it is a
    statement about ``log``, else None."""
    try:
        public.verify(base64.b64decode(signature, validate=True), statement.encode())
    except (InvalidSignature, ValueError):
        return None
    fields = orjson.loads(statement)
    return fields if isinstance(fields, dict) and fields.get("log") == log else None

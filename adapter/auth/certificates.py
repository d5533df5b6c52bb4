"""TLS client certificates (mTLS): what a connection presented, and whether it is a
client's (RFC 8705: ``tls_client_auth`` at the token endpoint, tokens bound to the
certificate by its SHA-256 thumbprint, ``cnf.x5t#S256``).

TLS itself (the chain up to ``ADAPTER_TLS_CLIENT_CA``, the validity dates) is checked by
Python's ``ssl`` module before a byte of HTTP is read; this module only names the
certificate the handshake accepted. The HTTP protocol class (adapter/api/server.py) puts it
in each request's state as ``tls_client_certificate``.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from cryptography import x509
from starlette.requests import Request

from adapter.consortium import ClientCertificate

STATE_KEY = "tls_client_certificate"


@dataclass(frozen=True, slots=True)
class PeerCertificate:
    sha256: bytes  # digest of the DER encoding
    subject: x509.Name

    @classmethod
    def from_der(cls, der: bytes) -> PeerCertificate:
        cert = x509.load_der_x509_certificate(der)
        return cls(hashlib.sha256(der).digest(), cert.subject)

    @property
    def thumbprint(self) -> str:
        """``x5t#S256``: base64url of the SHA-256 digest, no padding."""
        return base64.urlsafe_b64encode(self.sha256).decode().rstrip("=")

    @property
    def fingerprint(self) -> str:
        """The digest as openssl prints it (``AB:CD:…``), for logs and the consortium file."""
        return ":".join(f"{b:02X}" for b in self.sha256)


def of_request(request: Request) -> PeerCertificate | None:
    found = getattr(request.state, STATE_KEY, None)
    return found if isinstance(found, PeerCertificate) else None


def matches(expected: ClientCertificate, presented: PeerCertificate) -> bool:
    if expected.sha256 is not None:
        wanted = bytes.fromhex(expected.sha256.replace(":", ""))
        return wanted == presented.sha256
    assert expected.subject is not None
    try:
        return x509.Name.from_rfc4514_string(expected.subject) == presented.subject
    except ValueError:
        return False

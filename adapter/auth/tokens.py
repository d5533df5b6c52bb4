"""Access tokens: JWT (RFC 7519) signed with EdDSA (Ed25519) by PyJWT.

Claims: ``iss`` and ``aud`` (the adapter's, settings), ``sub`` (the client id), ``iat``,
``nbf``, ``exp`` (short-lived, ``ADAPTER_AUTH_TOKEN_SECONDS``), ``jti``; ``facility``,
``roles`` and ``scope`` say what the client was allowed when the token was made. On each
call the signature (by ``kid``), issuer, audience and expiry are checked, and the client is
looked up again in the consortium file: a client removed or given fewer roles loses them
at once, whatever its token says.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt

from adapter.auth.keys import KeyRing
from adapter.consortium import Client, Consortium

ALGORITHM = "EdDSA"
LEEWAY_SECONDS = 30  # clocks of the consortium's machines differ a little


class TokenError(Exception):
    """The token cannot be accepted; the message is safe to answer (no token content)."""


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller of one request."""

    client: str
    facility: str
    roles: frozenset[str]
    consortium_scope: bool  # may see every facility's data (operator, admin)

    def of_facility(self, facility_id: str | None) -> bool:
        return self.consortium_scope or facility_id == self.facility


@dataclass(frozen=True)
class TokenService:
    keys: KeyRing
    issuer: str
    audience: str
    lifetime: int  # seconds

    def issue(
        self, client: Client, now: datetime | None = None, *, bound_to: str | None = None
    ) -> tuple[str, str]:
        """A signed token for ``client`` and its ``jti``; ``bound_to``: the thumbprint of
        the client certificate it was asked with (RFC 8705 §3: only usable over a connection
        presenting that certificate)."""
        now = now or datetime.now(UTC)
        jti = str(uuid.uuid4())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": client.id,
            "iat": now,
            "nbf": now,
            "exp": now + timedelta(seconds=self.lifetime),
            "jti": jti,
            "facility": client.facility,
            "roles": sorted(client.roles),
            "scope": client.scope,
        }
        if bound_to is not None:
            claims["cnf"] = {"x5t#S256": bound_to}
        token = jwt.encode(
            claims, self.keys.signing, algorithm=ALGORITHM, headers={"kid": self.keys.signing_id}
        )
        return token, jti

    def check(self, token: str, consortium: Consortium, presented: str | None = None) -> Principal:
        """The caller of a token; ``presented``: the thumbprint of the client certificate
        of the connection, if it presented one."""
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError:
            raise TokenError("the bearer token is not a JWT") from None
        key = self.keys.verifying.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise TokenError("the bearer token was not signed by a key of this adapter")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],  # never the header's choice (no "none", no HS256)
                audience=self.audience,
                issuer=self.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]},
            )
        except jwt.ExpiredSignatureError:
            raise TokenError("the bearer token has expired") from None
        except jwt.InvalidAudienceError:
            raise TokenError("the bearer token is for another audience") from None
        except jwt.InvalidIssuerError:
            raise TokenError("the bearer token is from another issuer") from None
        except jwt.InvalidSignatureError:
            raise TokenError("the bearer token's signature is wrong") from None
        except jwt.PyJWTError as exc:
            raise TokenError(f"the bearer token is not valid ({type(exc).__name__})") from None
        bound = (claims.get("cnf") or {}).get("x5t#S256")
        if bound is not None and bound != presented:
            raise TokenError(
                "the bearer token is bound to a client certificate this connection did not present"
            )
        client = consortium.client(str(claims["sub"]))
        if client is None or client.facility != claims.get("facility"):
            raise TokenError("the bearer token's client is not (or no longer) known")
        roles = frozenset(client.roles) & frozenset(claims.get("roles") or ())
        return Principal(
            client=client.id,
            facility=client.facility,
            roles=roles,
            consortium_scope=client.scope == "consortium" and claims.get("scope") == "consortium",
        )

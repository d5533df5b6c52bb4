"""The console's login session: a signed cookie (JWT, EdDSA) and its CSRF token.

The cookie holds who logged in (a client of the consortium file), its facility, roles and
scope, a random CSRF token and an expiry; it is signed with the adapter's token key
(adapter/auth/keys.py) under its own audience, so an API bearer token is no session and a
session is no bearer token. Like a bearer token, the client is looked up again in the
consortium file on every request: a removed client or a lost role takes effect at once.

Cookie: ``HttpOnly`` (no script reads it), ``SameSite=Strict`` (no other site's page sends
it), ``Path=/console``, ``Secure`` when the request came over HTTPS. Every POST must carry
the session's CSRF token (form field ``csrf_token`` or header ``X-CSRF-Token``) and, when
the browser sends one, an ``Origin`` of this adapter.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from adapter.auth.keys import KeyRing, key_id
from adapter.auth.rules import ROLES
from adapter.auth.tokens import Principal
from adapter.consortium import Consortium

COOKIE = "yigongti_console"
LANG_COOKIE = "yigongti_console_lang"
AUDIENCE_SUFFIX = "/console"
ANONYMOUS = "anonymous"  # the session of a console with authentication off


class SessionError(Exception):
    """No valid session: the browser is sent to the login page."""


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    client: str
    facility: str | None
    roles: frozenset[str]
    consortium_scope: bool
    csrf: str
    expires: datetime

    @property
    def principal(self) -> Principal | None:
        """The API's principal for the handlers' facility limits; None when auth is off."""
        if self.client == ANONYMOUS:
            return None
        assert self.facility is not None
        return Principal(self.client, self.facility, self.roles, self.consortium_scope)

    def check_csrf(self, given: str | None) -> bool:
        return bool(given) and hmac.compare_digest(self.csrf.encode(), str(given).encode())


@dataclass(frozen=True)
class SessionSigner:
    keys: KeyRing
    issuer: str
    audience: str
    lifetime: int  # seconds

    @classmethod
    def ephemeral(cls, issuer: str, audience: str, lifetime: int) -> SessionSigner:
        """With authentication off there is no key ring: sessions die with the process."""
        key = Ed25519PrivateKey.generate()
        kid = key_id(key.public_key())
        return cls(KeyRing(key, kid, {kid: key.public_key()}, True), issuer, audience, lifetime)

    def issue(
        self,
        client: str,
        facility: str | None,
        roles: frozenset[str],
        consortium_scope: bool,
        now: datetime | None = None,
    ) -> tuple[str, ConsoleSession]:
        now = now or datetime.now(UTC)
        session = ConsoleSession(
            client,
            facility,
            roles,
            consortium_scope,
            secrets.token_urlsafe(32),
            now + timedelta(seconds=self.lifetime),
        )
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience + AUDIENCE_SUFFIX,
            "sub": client,
            "iat": now,
            "exp": session.expires,
            "facility": facility,
            "roles": sorted(roles),
            "scope": "consortium" if consortium_scope else "facility",
            "csrf": session.csrf,
        }
        token = jwt.encode(
            claims, self.keys.signing, algorithm="EdDSA", headers={"kid": self.keys.signing_id}
        )
        return token, session

    def check(self, token: str, consortium: Consortium, auth_on: bool) -> ConsoleSession:
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            key = self.keys.verifying.get(kid) if isinstance(kid, str) else None
            if key is None:
                raise SessionError("the session was not signed by this adapter")
            claims = jwt.decode(
                token,
                key,
                algorithms=["EdDSA"],
                audience=self.audience + AUDIENCE_SUFFIX,
                issuer=self.issuer,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.PyJWTError as exc:
            raise SessionError(f"the session is not valid ({type(exc).__name__})") from None
        expires = datetime.fromtimestamp(int(claims["exp"]), UTC)
        csrf = str(claims.get("csrf") or "")
        if not csrf:
            raise SessionError("the session has no CSRF token")
        subject = str(claims["sub"])
        if not auth_on:
            if subject != ANONYMOUS:
                raise SessionError("authentication is off: log in again")
            return ConsoleSession(ANONYMOUS, None, frozenset(ROLES), True, csrf, expires)
        if subject == ANONYMOUS:
            raise SessionError("authentication is on: log in")
        client = consortium.client(subject)
        if client is None or client.facility != claims.get("facility"):
            raise SessionError("the session's client is not (or no longer) known")
        roles = frozenset(client.roles) & frozenset(claims.get("roles") or ())
        scope = client.scope == "consortium" and claims.get("scope") == "consortium"
        return ConsoleSession(client.id, client.facility, roles, scope, csrf, expires)

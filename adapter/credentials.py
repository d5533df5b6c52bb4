"""Removing credentials from text the adapter keeps or prints.

A destination's error answer is stored (``delivery_attempt``, ``outbox.last_error``) and
shown at ``/deliveries/{id}`` and by ``adapter deliveries ID``; some servers echo the
request, headers included, in their error body. What is removed:

* the values of ``Authorization``, ``Proxy-Authorization``, ``Cookie``, ``Set-Cookie`` and
  ``X-Api-Key`` headers, written as ``Name: value`` or as JSON ``"Name": "value"``;
* ``Bearer <token>``, and ``Basic <base64>`` where the base64 decodes to ``user:password``
  (so "Basic metabolic panel" stays);
* the values of ``access_token``, ``refresh_token``, ``id_token``, ``client_secret``,
  ``password``, ``api_key`` fields (JSON, form or ``key=value`` text);
* every secret the destination is configured with (token, password, client secret, the
  current OAuth2 access token), wherever it stands, also URL- and base64-encoded.

Pure functions, no adapter imports: :mod:`adapter.logs` applies the pattern part to every
log record as well.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, quote_plus

CREDENTIAL_MASK = "[REDACTED-CREDENTIAL]"

_HEADER_NAMES = r"(?:proxy-)?authorization|cookie|set-cookie|x-api-key"
_FIELD_NAMES = r"access_token|refresh_token|id_token|client_secret|password|passwd|api_key|apikey"
# Authorization: Basic abc= / "Authorization": "Bearer x" / 'authorization': '...'
_HEADER_RE = re.compile(
    rf"""((?<![\w-])["']?(?:{_HEADER_NAMES})["']?\s*[:=]\s*["']?)([^"'\r\n]+)""",
    re.IGNORECASE,
)
# "access_token": "x" / access_token=x / client_secret: x
_FIELD_RE = re.compile(
    rf"""((?<![\w-])["']?(?:{_FIELD_NAMES})["']?\s*[:=]\s*["']?)([^"'&\s,;}}\]]+)""",
    re.IGNORECASE,
)
_BEARER_RE = re.compile(r"(\bBearer\s+)([A-Za-z0-9._~+/\-]{6,}=*)")
_BASIC_RE = re.compile(r"(\bBasic\s+)([A-Za-z0-9+/]{4,}={0,2})")
_SENSITIVE_KEYS = re.compile(rf"^(?:{_HEADER_NAMES}|{_FIELD_NAMES})$", re.IGNORECASE)
_MIN_SECRET = 4  # shorter configured values would mask ordinary text


def _basic(match: re.Match[str]) -> str:
    try:
        decoded = base64.b64decode(match.group(2), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return match.group(0)
    return match.group(1) + CREDENTIAL_MASK if ":" in decoded else match.group(0)


def secret_forms(secrets: Iterable[str | None]) -> list[str]:
    """Each secret as it may stand in an answer: as is, URL-encoded, base64; longest first."""
    forms: set[str] = set()
    for secret in secrets:
        if not secret or len(secret) < _MIN_SECRET:
            continue
        forms.update({secret, quote(secret, safe=""), quote_plus(secret)})
        forms.add(base64.b64encode(secret.encode()).decode().rstrip("="))
    return sorted(forms, key=len, reverse=True)


def redact_credentials(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` without credentials (see the module text); ``secrets`` are removed verbatim."""
    if not text:
        return text
    for form in secret_forms(secrets):
        text = text.replace(form, CREDENTIAL_MASK)
    text = _HEADER_RE.sub(lambda m: m.group(1) + CREDENTIAL_MASK, text)
    text = _FIELD_RE.sub(lambda m: m.group(1) + CREDENTIAL_MASK, text)
    text = _BEARER_RE.sub(lambda m: m.group(1) + CREDENTIAL_MASK, text)
    return _BASIC_RE.sub(_basic, text)


def redact_credentials_in(value: Any, secrets: Iterable[str | None] = ()) -> Any:
    """A copy of a JSON-like value (an OperationOutcome, an echoed request) without
    credentials: values under credential keys masked, every string redacted."""
    forms = list(secrets)
    if isinstance(value, dict):
        return {
            key: CREDENTIAL_MASK
            if isinstance(key, str) and _SENSITIVE_KEYS.match(key) and value[key] is not None
            else redact_credentials_in(value[key], forms)
            for key in value
        }
    if isinstance(value, list):
        return [redact_credentials_in(item, forms) for item in value]
    if isinstance(value, str):
        return redact_credentials(value, forms)
    return value


_SECRET_HEADER = re.compile(r"key|token|secret|auth|password|signature|cookie", re.IGNORECASE)


def header_secrets(headers: dict[str, str]) -> list[str]:
    """The values of configured extra headers whose names say they carry a secret."""
    return [value for name, value in headers.items() if _SECRET_HEADER.search(name)]


def destination_secrets(destination: object) -> list[str]:
    """The secrets a destination (or source) holds, if it says: its ``secrets()``."""
    getter = getattr(destination, "secrets", None)
    if not callable(getter):
        return []
    return [s for s in getter() if s]

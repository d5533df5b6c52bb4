"""audit_record's ``action``, ``outcome`` and ``channel`` stored as one character
(decision 0082).

A record's action, outcome and channel are copies of its body (verify checks them), kept in columns
for the searches (``(action, recorded)``, the receipts' partial index). Each known value is
stored as one character, its position in a fixed list: ``message.received`` is ``0``. The
lists are only ever appended to (stored codes name their position for ever); a value not
in them is stored as its text, and a text of one character or starting with ``ESCAPE`` as
``ESCAPE`` and the text, so every text has one stored form and reads back as itself. A
stored single character that is not a code (changed in the database) reads as itself:
verify then finds the column differing from the body.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import String
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

ESCAPE = "\x1f"
_DIGITS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

# append only: a stored code is a position in these lists
VOCABULARIES: dict[str, tuple[str, ...]] = {
    "action": (
        "message.received",
        "message.translated",
        "message.stored",
        "message.quarantined",
        "message.reprocessed",
        "delivery.delivered",
        "delivery.retry",
        "delivery.dead",
        "delivery.replayed",
        "delivery.paused",
        "delivery.resumed",
        "delivery.pruned",
        "fhir.read",
        "fhir.search",
        "referral.changed",
        "referral.refused",
        "consent.recorded",
        "consent.revoked",
        "recognition.marked",
        "auth.token",
        "auth.denied",
        "connection.refused",
        "config.loaded",
        "audit.read",
        "audit.verified",
        "audit.checkpoint",
        "audit.archived",
        "audit.purged",
        "audit.refused",
    ),
    "outcome": ("success", "warning", "failure"),
    # adapter/pipeline/receipt.py's Channel, then the delivery workers'
    "channel": ("http", "mllp", "file-drop", "fhir-pull", "cli", "sync", "reprocess", "delivery"),
}
_CODES = {
    name: {value: _DIGITS[n] for n, value in enumerate(values[: len(_DIGITS)])}
    for name, values in VOCABULARIES.items()
}


def encode(vocabulary: str, value: str) -> str:
    """The stored form of ``value``."""
    code = _CODES[vocabulary].get(value)
    if code is not None:
        return code
    if len(value) <= 1 or value.startswith(ESCAPE):
        return ESCAPE + value
    return value


def decode(vocabulary: str, stored: str) -> str:
    """The text a stored form stands for."""
    if stored.startswith(ESCAPE):
        return stored[1:]
    if len(stored) == 1:
        n = _DIGITS.find(stored)
        values = VOCABULARIES[vocabulary]
        return values[n] if 0 <= n < len(values) else stored
    return stored


class Coded(TypeDecorator[str]):
    """A column of ``vocabulary``'s values, each known one stored as one character; read
    and compared in SQL as the text (binds are encoded; order is not the text's)."""

    impl = String
    cache_ok = True

    def __init__(self, length: int, vocabulary: str) -> None:
        super().__init__(length)
        self.length = length
        self.vocabulary = vocabulary

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else encode(self.vocabulary, value)

    def bind_processor(self, dialect: Dialect) -> Callable[[str | None], str | None]:
        """``process_bind_param`` as one plain function (decision 0083: not
        ``TypeDecorator``'s closure around it); the impl's processor, if any, after it."""
        codes = _CODES[self.vocabulary]

        def bind(value: str | None) -> str | None:
            if value is None:
                return None
            code = codes.get(value)
            return encode(self.vocabulary, value) if code is None else code

        after = self.impl_instance.bind_processor(dialect)
        if after is None:
            return bind
        return lambda value: after(bind(value))

    def process_result_value(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else decode(self.vocabulary, value)

    def result_processor(self, dialect: Dialect, coltype: object) -> Callable[[Any], str | None]:
        """Likewise for the values read: the impl's processor first, if any."""
        vocabulary = self.vocabulary

        def read(value: Any) -> str | None:
            return None if value is None else decode(vocabulary, value)

        before = self.impl_instance.result_processor(dialect, coltype)
        if before is None:
            return read
        return lambda value: read(before(value))

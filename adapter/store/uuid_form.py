"""A UUID's canonical text and its 16 bytes, both ways: the stored form of ids
(``types.UuidText``, decisions 0081 and 0082) and of an inbound message's list of
references (adapter/store/json_pack.py)."""

from __future__ import annotations

import re

UUID_BYTES = 16
# a UUID's canonical text (lowercase, hyphenated): the only text that reads back the same
_CANONICAL = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def canonical_uuid_bytes(value: str) -> bytes | None:
    """The 16 bytes of a UUID in its canonical text, else None."""
    if len(value) == 36 and _CANONICAL.fullmatch(value):
        return bytes.fromhex(value.replace("-", ""))
    return None


def uuid_of(stored: bytes) -> str:
    """The canonical text of a UUID's 16 bytes."""
    h = stored.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

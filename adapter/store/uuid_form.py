"""A UUID's canonical text and its 16 bytes, both ways: the stored form of ids
(``types.UuidText``, decisions 0081 and 0082) and of an inbound message's list of
references (adapter/store/json_pack.py)."""

from __future__ import annotations

UUID_BYTES = 16


def canonical_uuid_bytes(value: str) -> bytes | None:
    """The 16 bytes of a UUID in its canonical text (lowercase hex, hyphenated as
    8-4-4-4-12), else None: the only text that reads back the same. Checked without a
    regular expression (decision 0083): the hyphens in place, 32 characters that
    ``bytes.fromhex`` takes (it also takes capitals and spaces), and its bytes' hex being
    that very text (lowercase, nothing skipped)."""
    if (
        len(value) != 36
        or value[8] != "-"
        or value[13] != "-"
        or value[18] != "-"
        or value[23] != "-"
    ):
        return None
    hexed = value.replace("-", "")
    if len(hexed) != 32:  # another hyphen elsewhere
        return None
    try:
        data = bytes.fromhex(hexed)
    except ValueError:
        return None
    return data if data.hex() == hexed else None


def uuid_of(stored: bytes) -> str:
    """The canonical text of a UUID's 16 bytes."""
    h = stored.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

"""The stored form of an inbound message's ``issues`` and ``resources`` (decision 0081).

A JSON value is stored as the smallest of: its orjson text; a zstd frame of that text
made with the resource body dictionary (adapter/store/body_codec.py: FHIR words; a lab
message's issues, ~640 bytes of text, become ~160); and, for a list of "Type/id"
references whose ids are the adapter's UUIDs (``resources``), ``REFS`` followed per
reference by its type's length, its type and the id's 16 bytes, or a zstd frame of that
(a lab message's 8.6 references, ~440 bytes of text, become ~190).

Reading takes every form: a zstd frame (its magic number) of either, ``REFS`` (a NUL
byte, which no JSON text starts with), JSON text as bytes, or the JSON text a SQLite row
stored before migration 0033 holds (``str``).
"""

from __future__ import annotations

from typing import Any

import orjson

from adapter.store.body_codec import ZSTD_MAGIC, json_bytes, pack_json
from adapter.store.uuid_form import UUID_BYTES, canonical_uuid_bytes, uuid_of

REFS = b"\x00R"


def _ref_form(value: Any) -> bytes | None:
    """``value``'s ``REFS`` form, or None when it is not a list of "Type/<uuid>"."""
    if not isinstance(value, list) or not value:
        return None
    out = bytearray(REFS)
    for item in value:
        if not isinstance(item, str):
            return None
        rtype, slash, rid = item.partition("/")
        if not slash or not 0 < len(rtype) < 256 or not rtype.isascii():
            return None
        packed = canonical_uuid_bytes(rid)  # only the canonical text reads back the same
        if packed is None:
            return None
        out.append(len(rtype))
        out += rtype.encode()
        out += packed
    return bytes(out)


def _refs(stored: bytes) -> list[str]:
    refs, at = [], len(REFS)
    while at < len(stored):
        size = stored[at]
        rtype = stored[at + 1 : at + 1 + size].decode()
        at += 1 + size
        refs.append(f"{rtype}/{uuid_of(stored[at : at + UUID_BYTES])}")
        at += UUID_BYTES
    return refs


def pack(value: Any) -> bytes:
    """The stored form of a JSON value: the smallest of the forms above."""
    plain = _ref_form(value) or orjson.dumps(value)
    if len(plain) <= _NEVER_FRAMED:  # ``[]`` (a new message's issues and resources)
        return plain
    frame = pack_json(plain)
    return frame if len(frame) < len(plain) else plain


# a text this short is never longer than its zstd frame: the frame's magic number (4
# bytes), header (2 at least, the dictionary's id among them), a block's header (3) and
# content (1 at least) and the checksum (4) take 14 bytes at the least (decision 0143)
_NEVER_FRAMED = 12


def unpack(stored: bytes | bytearray | memoryview | str) -> Any:
    """The JSON value of a stored form (any of them)."""
    if isinstance(stored, str):
        return orjson.loads(stored)
    data = bytes(stored)
    if data.startswith(ZSTD_MAGIC):
        data = json_bytes(data)
    return _refs(data) if data.startswith(REFS) else orjson.loads(data)

"""The stored form of an inbound message's exact bytes (inbound_message.raw, decision 0065).

A message is kept zlib-compressed when that makes it smaller (a lab message's ~0.95 KB of
HL7 v2 text becomes ~0.53 KB), else as it is. A compressed value starts with ``MARK`` (a
NUL byte and ``raw``, which no text message starts with) and a codec byte: ``z`` zlib,
``=`` stored as it is. A value without the mark is a message as it was received: every row
written before migration 0023, and new ones that do not compress. Migration 0023 gave the
few older rows whose bytes happen to start with the mark the ``=`` codec, so that reading
never takes a received message for a compressed one.

Reading returns the exact bytes received; what cannot be read as its codec says (a changed
row) is returned as stored, and the sha256 check of ``verified_raw`` refuses it.
"""

from __future__ import annotations

import zlib

MARK = b"\x00raw"
ZLIB, AS_IS = b"z", b"="
_HEAD = len(MARK) + 1


def pack(raw: bytes) -> bytes:
    """The stored form of the received bytes ``raw``."""
    packed = zlib.compress(raw, 6)
    if len(packed) + _HEAD < len(raw):
        return MARK + ZLIB + packed
    if raw.startswith(MARK):
        return MARK + AS_IS + raw
    return raw


def unpack(stored: bytes) -> bytes:
    """The received bytes of a stored value (either form)."""
    if not stored.startswith(MARK):
        return stored
    codec, body = stored[len(MARK) : _HEAD], stored[_HEAD:]
    if codec == AS_IS:
        return body
    if codec == ZLIB:
        try:
            return zlib.decompress(body)
        except zlib.error:
            return stored  # changed in the database: the sha256 check refuses it
    return stored

"""The stored form of an inbound message's exact bytes (inbound_message.raw, decisions 0065
and 0092).

A message is kept compressed when that makes it smaller, else as it is: since decision 0092
as a zstd frame made with a dictionary of HL7 v2 messages shipped in the package (``RAW`` in
adapter/store/body_codec.py; a lab message's ~0.95 KB becomes ~0.37 KB, where zlib made
~0.54 KB, in a sixth of zlib's time); before, zlib. A compressed value starts with ``MARK``
(a NUL byte and ``raw``, which no text message starts with) and a codec byte: ``d`` the
zstd frame (it names its dictionary), ``z`` zlib (written before 0092, read for ever),
``=`` stored as it is. A value without the mark is a message as it was received: every row
written before migration 0023, and new ones that do not compress. Migration 0023 gave the
few older rows whose bytes happen to start with the mark the ``=`` codec, so that reading
never takes a received message for a compressed one.

Reading returns the exact bytes received; what cannot be read as its codec says (a changed
row) is returned as stored, and the sha256 check of ``verified_raw`` refuses it.
"""

from __future__ import annotations

import zlib

import zstandard

from adapter.store.body_codec import raw_compressor, raw_decompressor

MARK = b"\x00raw"
ZSTD, ZLIB, AS_IS = b"d", b"z", b"="
_HEAD = len(MARK) + 1


def pack(raw: bytes) -> bytes:
    """The stored form of the received bytes ``raw``."""
    packed = raw_compressor().compress(raw)
    if len(packed) + _HEAD < len(raw):
        return MARK + ZSTD + packed
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
    if codec == ZSTD:
        try:
            dict_id = zstandard.get_frame_parameters(body).dict_id
            return raw_decompressor(dict_id).decompress(body)
        except (zstandard.ZstdError, ValueError):
            return stored  # changed in the database: the sha256 check refuses it
    if codec == ZLIB:
        try:
            return zlib.decompress(body)
        except zlib.error:
            return stored  # changed in the database: the sha256 check refuses it
    return stored

"""Resource bodies as zstd frames compressed with a dictionary shipped in the package
(decision 0049); the audit log's record bodies too, with a dictionary of their own
(decision 0072).

A frame names its dictionary (the zstd frame header's dictionary id), so a body written
today stays readable after a newer dictionary is added: ``DICTIONARIES`` only grows, and a
shipped dictionary file never changes. Bodies stored before migration 0017 are plain
orjson text (``str`` from a SQLite TEXT value, its UTF-8 bytes on PostgreSQL): they are
read as they are; a zstd frame is recognised by its magic number, which no JSON text
starts with.
"""

from __future__ import annotations

import hashlib
import threading
from functools import cache
from pathlib import Path
from typing import Any

import orjson
import zstandard

DICTIONARY_DIR = Path(__file__).resolve().parent.parent / "data" / "body-dictionaries"
# every dictionary a stored body may name: id -> (file, its sha256). Add, never change or
# remove one: bodies name it for ever (scripts/train_body_dictionary.py makes new ones)
DICTIONARIES: dict[int, tuple[str, str]] = {
    2026120401: (
        "2026120401.zdict",
        "cafca6514b5c87b9d6f571d12edb85ee6b188fbc2360815d5a7f5473a73cabb2",
    ),
    2026120501: (
        "2026120501.zdict",
        "c7c5a93818b961c4a7bf09ca842a7443cdb6031d3e70966e120adc4ab7af3ffe",
    ),
    2026120502: (
        "2026120502.zdict",
        "35a46d289b59e5a0242300f5fe6c726ff300bceb0a7d563f97f7cabaab8a5367",
    ),
    2026120601: (
        "2026120601.zdict",
        "69edde1f2276a6b22a2091ab59495dca75ca7287d8d9e1ee7c6e7ea080baf5ed",
    ),
}
CURRENT = 2026120401  # the dictionary new resource bodies are written with
AUDIT = 2026120501  # the one new audit record bodies are written with (decision 0072)
FEATURES = 2026120502  # identity_record.features (decision 0082)
RAW = 2026120601  # inbound_message.raw, HL7 v2 messages' bytes (raw_codec.py, decision 0092)
LEVEL = 3  # zstd level: 3 with a dictionary measured 4.7x, 6 us per body (decision 0049)
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


class UnknownDictionaryError(ValueError):
    """A stored body names a dictionary this version of the adapter does not have."""


@cache
def dictionary(dict_id: int) -> zstandard.ZstdCompressionDict:
    known = DICTIONARIES.get(dict_id)
    if known is None:
        raise UnknownDictionaryError(
            f"a stored body was compressed with dictionary {dict_id}, which this version of "
            "the adapter does not ship (a newer version wrote it)"
        )
    name, digest = known
    raw = (DICTIONARY_DIR / name).read_bytes()
    data = zstandard.ZstdCompressionDict(raw)
    if hashlib.sha256(raw).hexdigest() != digest or data.dict_id() != dict_id:
        raise UnknownDictionaryError(f"{name} is not the dictionary {dict_id} that was shipped")
    return data


# compressor and decompressor objects are not safe for simultaneous use from two threads
_local = threading.local()


def _compressor(dict_id: int = CURRENT) -> zstandard.ZstdCompressor:
    made: dict[int, zstandard.ZstdCompressor] | None = getattr(_local, "compressors", None)
    if made is None:
        made = _local.compressors = {}
    found = made.get(dict_id)
    if found is None:
        found = made[dict_id] = zstandard.ZstdCompressor(
            level=LEVEL,
            dict_data=dictionary(dict_id),
            write_checksum=True,  # 4 bytes: a damaged body fails loudly, never reads wrong
            write_content_size=True,
            write_dict_id=True,
        )
    return found


def _decompressor(dict_id: int) -> zstandard.ZstdDecompressor:
    made: dict[int, zstandard.ZstdDecompressor] | None = getattr(_local, "decompressors", None)
    if made is None:
        made = _local.decompressors = {}
    found = made.get(dict_id)
    if found is None:
        found = made[dict_id] = zstandard.ZstdDecompressor(
            dict_data=dictionary(dict_id) if dict_id else None
        )
    return found


def raw_compressor() -> zstandard.ZstdCompressor:
    """The compressor of received messages (adapter/store/raw_codec.py): no checksum, as
    the message's sha256 is checked on reading (``verified_raw``); no content size."""
    found: zstandard.ZstdCompressor | None = getattr(_local, "raw_compressor", None)
    if found is None:
        found = _local.raw_compressor = zstandard.ZstdCompressor(
            level=LEVEL,
            dict_data=dictionary(RAW),
            write_checksum=False,
            write_content_size=True,
            write_dict_id=True,
        )
    return found


def raw_decompressor(dict_id: int) -> zstandard.ZstdDecompressor:
    """The decompressor of a received message's frame made with dictionary ``dict_id``."""
    return _decompressor(dict_id)


def pack(value: Any) -> bytes:
    """The stored form of a JSON value: a zstd frame of its orjson text."""
    return _compressor().compress(orjson.dumps(value))


def pack_json(text: bytes, dict_id: int = CURRENT) -> bytes:
    """A zstd frame of JSON text as it is (an old plain body, compressed in place; an
    audit record's canonical text with ``dict_id=AUDIT``)."""
    return _compressor(dict_id).compress(text)


def is_frame(data: bytes | bytearray | memoryview | str) -> bool:
    return not isinstance(data, str) and bytes(data[:4]) == ZSTD_MAGIC


def json_bytes(data: bytes | bytearray | memoryview | str) -> bytes:
    """The orjson text of a stored body, whichever form it was stored in."""
    if isinstance(data, str):
        return data.encode()  # SQLite, stored before migration 0017
    raw = bytes(data)
    if raw[:4] != ZSTD_MAGIC:
        return raw  # PostgreSQL, stored before migration 0017 (the text's UTF-8 bytes)
    dict_id = zstandard.get_frame_parameters(raw).dict_id
    return _decompressor(dict_id).decompress(raw)


def unpack(data: bytes | bytearray | memoryview | str) -> Any:
    """The JSON value of a stored body (a zstd frame or plain JSON text)."""
    if isinstance(data, str):
        return orjson.loads(data)
    return orjson.loads(json_bytes(data))

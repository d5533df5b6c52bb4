"""The stored form of resource bodies (decision 0049): zstd frames naming a shipped
dictionary, and plain JSON text from before migration 0017, read alike."""

from __future__ import annotations

import hashlib

import orjson
import pytest
import zstandard

from adapter.store import body_codec
from adapter.store.body_codec import (
    CURRENT,
    DICTIONARIES,
    DICTIONARY_DIR,
    UnknownDictionaryError,
    is_frame,
    json_bytes,
    pack,
    unpack,
)

BODY = {"resourceType": "Observation", "id": "o1", "valueString": "白细胞 ↑", "n": 1.5}


def test_a_body_is_a_frame_naming_the_current_dictionary_and_reads_back_exactly() -> None:
    frame = pack(BODY)
    assert is_frame(frame)
    assert zstandard.get_frame_parameters(frame).dict_id == CURRENT
    assert unpack(frame) == BODY
    assert json_bytes(frame) == orjson.dumps(BODY)  # the same text, key order kept


def test_plain_bodies_from_before_0017_read_as_they_are() -> None:
    text = orjson.dumps(BODY).decode()
    assert unpack(text) == BODY  # SQLite TEXT value
    assert unpack(text.encode()) == BODY  # PostgreSQL bytea of the old text
    assert unpack(memoryview(text.encode())) == BODY
    assert not is_frame(text) and not is_frame(text.encode())


def test_every_shipped_dictionary_is_the_file_that_was_shipped() -> None:
    assert CURRENT in DICTIONARIES
    for dict_id, (name, digest) in DICTIONARIES.items():
        raw = (DICTIONARY_DIR / name).read_bytes()
        assert hashlib.sha256(raw).hexdigest() == digest, f"{name} changed: never change one"
        assert zstandard.ZstdCompressionDict(raw).dict_id() == dict_id


def test_a_frame_naming_an_unknown_dictionary_fails_loudly() -> None:
    other = zstandard.train_dictionary(
        4096, [orjson.dumps({**BODY, "id": f"o{n}", "k": n * 7}) for n in range(400)], dict_id=99999
    )
    frame = zstandard.ZstdCompressor(dict_data=other).compress(orjson.dumps(BODY))
    with pytest.raises(UnknownDictionaryError, match="99999"):
        unpack(frame)


def test_a_frame_without_dictionary_reads_too() -> None:
    frame = zstandard.ZstdCompressor().compress(orjson.dumps(BODY))
    assert unpack(frame) == BODY


def test_a_damaged_frame_fails_instead_of_reading_wrong() -> None:
    frame = bytearray(pack(BODY))
    frame[len(frame) // 2] ^= 0x01
    with pytest.raises((zstandard.ZstdError, orjson.JSONDecodeError)):
        unpack(bytes(frame))


def test_threads_get_their_own_compressor() -> None:
    import threading

    seen: list[object] = []
    thread = threading.Thread(target=lambda: seen.append(body_codec._compressor()))
    thread.start()
    thread.join()
    assert seen[0] is not body_codec._compressor()

"""The stored forms of decision 0123's types (adapter/store/id_forms.py): every text reads
back as itself, a canonical UUID takes 16 bytes, and a patient key is its id's form."""

from __future__ import annotations

import uuid

from adapter.store.id_forms import key_bytes, key_text
from adapter.store.types import uuid_bytes, uuid_text

IDS = [
    str(uuid.UUID(int=0xB2)),  # first byte 0x00
    str(uuid.UUID(int=1 << 120)),  # first byte 0x01
    str(uuid.uuid4()),
    "p1",
    "abcdefghijklmnop",  # 16 characters
    "ABCDEFGH-1234-5678-9ABC-DEF012345678",  # upper case: not canonical, kept as text
    "",
]


def test_index_ids_read_back_and_uuids_take_16_bytes() -> None:
    for value in IDS:
        assert uuid_text(uuid_bytes(value)) == value
    assert len(uuid_bytes(IDS[2])) == 16 and len(uuid_bytes("abcdefghijklmnop")) == 17


def test_patient_keys_are_their_ids_form_and_read_back() -> None:
    for value in IDS:
        key = f"Patient/{value}"
        assert key_bytes(key) == uuid_bytes(value)
        assert key_text(key_bytes(key)) == key
    for other in ["Group/g1", "x" * 15, "x" * 14, "Patient"]:  # not ``Patient/<id>``
        stored = key_bytes(other)
        assert len(stored) != 16 and key_text(stored) == other
    assert key_text(None) is None and key_text("Patient/p1") == "Patient/p1"

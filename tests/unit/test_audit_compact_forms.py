"""The audit log's compact stored forms (decision 0074): references, kinds, digests and
SQLite's instants read back exactly as written; the ranges the entity search reads hold
every version of an entity and nothing else; a stored value changed in the database reads
as some text, never as an error."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.dialects import postgresql, sqlite

from adapter.store.audit_reference import LinkKind, pack, unpack, versions
from adapter.store.types import Digest, UTCMicros

U = "8f14e45f-ceea-467f-a1c4-1f5e3b9a1c2d"


@pytest.mark.parametrize(
    ("reference", "size"),
    [
        (f"Patient/{U}", 18),
        (f"Observation/{U}/_history/12", 21),
        (f"InboundMessage/{U}", len(f"InboundMessage/{U}")),  # no code: text
        (f"Observation/{U.upper()}", 48),  # not the adapter's lowercase form: text
        (f"Observation/{U}/_history/0", 20),  # any version text is packed after the id
        (f"Observation/{U}/_history/", 19),
        (f"Observation/{U}/_history/版本\n2", 27),
        (f"Observation/{U}/history/1", 58),  # not a version: text
        ("Patient/p1", 10),
        ("\x01Patient/x", 11),  # a text that starts like a packed form: escaped
        ("\x02x", 3),
        ("病人/张三", len("病人/张三".encode())),
    ],
)
def test_a_reference_reads_back_exactly(reference: str, size: int) -> None:
    stored = pack(reference)
    assert unpack(stored) == reference and len(stored) == size


def test_every_version_of_an_entity_is_one_range_of_nothing_else() -> None:
    ids = sorted(str(uuid.uuid4()) for _ in range(50))
    refs = [f"{t}/{i}" for t in ("Observation", "Patient") for i in ids]
    stored = sorted(
        {pack(r) for r in refs}
        | {pack(f"{r}/_history/{n}") for r in refs for n in (1, 2, 10, 123, "0", "")}
        | {pack(f"{r}/x") for r in refs}  # a text form beside them
    )
    for entity in refs[:5] + refs[60:65]:
        low, high, versioned = versions(entity)
        assert versioned is None  # packed: the range is exact
        found = {unpack(s) for s in stored if low <= s < high}
        assert found == {entity} | {f"{entity}/_history/{n}" for n in (1, 2, 10, 123, "0", "")}
    low, high, versioned = versions("Observation/o1")  # text: the range and the filter
    assert versioned is not None
    texts = [
        "Observation/o1",
        "Observation/o1/_history/2",
        "Observation/o10",
        "Observation/o1/ahistory/1",
    ]
    found = [t for t in texts if low <= pack(t) < high and (pack(t) == low or pack(t) >= versioned)]
    assert found == ["Observation/o1", "Observation/o1/_history/2"]


def test_a_changed_stored_value_reads_as_text_never_an_error() -> None:
    assert unpack(b"\x01\xff" + bytes(16)).startswith("\x01")  # no such type code
    assert unpack(b"\x01\x02\x00") == "\x01\x02\x00"  # too short to be packed
    assert unpack(pack(f"Patient/{U}") + b"junk")  # neither nothing nor a version after it
    assert isinstance(unpack(b"\xff\xfe"), str)


@pytest.mark.parametrize("dialect", [sqlite.dialect(), postgresql.dialect()])
def test_kinds_digests_and_instants(dialect: object) -> None:
    kind = LinkKind()
    assert [kind.process_bind_param(k, dialect) for k in ("patient", "entity", "other")] == [  # type: ignore[arg-type]
        "p",
        "e",
        "other",
    ]
    assert kind.process_result_value("p", dialect) == "patient"  # type: ignore[arg-type]
    digest = Digest()
    hexed = "0123456789abcdef" * 4
    stored = digest.process_bind_param(hexed, dialect)  # type: ignore[arg-type]
    assert stored == bytes.fromhex(hexed)
    assert digest.process_result_value(stored, dialect) == hexed  # type: ignore[arg-type]
    # not a digest (changed in the database): kept and read back as text
    assert (
        digest.process_result_value(digest.process_bind_param("forged", dialect), dialect)
        == "forged"
    )  # type: ignore[arg-type]
    assert digest.process_result_value("0" * 64, dialect) == "0" * 64  # type: ignore[arg-type]


def test_sqlite_instants_are_integer_microseconds_and_the_text_form_still_reads() -> None:
    micros, dialect = UTCMicros(), sqlite.dialect()
    moment = datetime(2026, 12, 5, 8, 0, 0, 123456, tzinfo=UTC)
    stored = micros.process_bind_param(moment, dialect)
    assert isinstance(stored, int)
    assert micros.process_result_value(stored, dialect) == moment
    later = micros.process_bind_param(moment + timedelta(microseconds=1), dialect)
    assert later == stored + 1  # the order and every microsecond kept
    assert micros.process_result_value("2026-12-05 08:00:00.123456", dialect) == moment
    with pytest.raises(ValueError):
        micros.process_bind_param(moment.replace(tzinfo=None), dialect)

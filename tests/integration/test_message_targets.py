"""save_resources names a reference to a resource of the same message by its key
(``search_index.target_key``, decision 0080) also across the message's calls (its
Provenance is saved by a later one): no SELECT of the targets' keys then, and never a key
given in a savepoint that was rolled back (decision 0083). SQLite and, in the ``-m db``
pass, PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, event, select
from sqlalchemy.orm import Session, sessionmaker

from adapter.store import create_message, save_resources
from adapter.store.models import KINDS, Resource
from adapter.store.search_terms import reference_rows

NOW = datetime(2026, 12, 5, 20, 0, tzinfo=UTC)
MESSAGE = "3f1c9a52-7d4e-4b8a-9c21-5e6f7a8b9c0d"
OTHER = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"


def _messages(session: Session) -> None:
    """The inbound messages the resources name (their foreign key)."""
    for n, message_id in enumerate((MESSAGE, OTHER)):
        raw = f"MSH|{n}".encode()
        create_message(
            session,
            source_system="test",
            facility_id=None,
            raw=raw,
            content_type="text/plain",
            sha256=f"{n:064x}",
            detected_format="hl7v2",
            encoding="utf-8",
            received_at=NOW,
            message_id=message_id,
        )


@contextmanager
def key_lookups(engine: Engine) -> Iterator[list[str]]:
    """The statements that look up references' target keys (``target_keys``)."""
    seen: list[str] = []

    def count(_c: Any, _cur: Any, statement: str, *_: Any) -> None:
        lookup = "FROM resource" in statement and "resource.resource_key" in statement
        if lookup and "content_hash" not in statement and "max(" not in statement:
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


def _patient(pid: str) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": pid, "gender": "female"}


def _observation(oid: str, pid: str) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}]},
        "subject": {"reference": f"Patient/{pid}"},
    }


def _reference_rows(session: Session, oid: str) -> list[tuple[Any, Any]]:
    key = session.scalar(
        select(Resource.resource_key).where(
            Resource.resource_type == "Observation", Resource.id == oid
        )
    )
    si = reference_rows()  # PostgreSQL's arrays as rows too (decision 0088)
    rows = session.execute(
        select(si.c.reference, si.c.target_key).where(
            si.c.resource_key == key, si.c.kind == KINDS["reference"]
        )
    )
    return sorted(set(rows), key=repr)


def _key_of(session: Session, rtype: str, rid: str) -> int | None:
    return session.scalar(
        select(Resource.resource_key).where(Resource.resource_type == rtype, Resource.id == rid)
    )


def test_a_later_call_of_the_message_names_its_earlier_resources_by_key_without_a_lookup(
    engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    with session_factory.begin() as session:
        _messages(session)
        save_resources(session, [_patient("p1")], message_id=MESSAGE, now=NOW)
        with key_lookups(engine) as lookups:
            save_resources(session, [_observation("o1", "p1")], message_id=MESSAGE, now=NOW)
        assert lookups == []
    with session_factory() as session:
        patient_key = _key_of(session, "Patient", "p1")
        assert patient_key is not None
        assert _reference_rows(session, "o1") == [(None, patient_key)]


def test_another_message_finds_the_key_by_its_lookup(
    engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    with session_factory.begin() as session:
        _messages(session)
        save_resources(session, [_patient("p2")], message_id=MESSAGE, now=NOW)
        with key_lookups(engine) as lookups:
            save_resources(session, [_observation("o2", "p2")], message_id=OTHER, now=NOW)
        assert len(lookups) == 1
    with session_factory() as session:
        assert _reference_rows(session, "o2") == [(None, _key_of(session, "Patient", "p2"))]


def test_a_key_of_a_rolled_back_savepoint_is_never_named(
    session_factory: sessionmaker[Session],
) -> None:
    with session_factory.begin() as session:
        _messages(session)
        savepoint = session.begin_nested()
        save_resources(session, [_patient("p3")], message_id=MESSAGE, now=NOW)
        savepoint.rollback()
        # the same message again (as a retry would): the patient is not stored now
        save_resources(session, [_observation("o3", "p3")], message_id=MESSAGE, now=NOW)
    with session_factory() as session:
        assert _key_of(session, "Patient", "p3") is None
        assert _reference_rows(session, "o3") == [("Patient/p3", None)]


def test_a_released_savepoints_keys_are_found_again_by_lookup(
    session_factory: sessionmaker[Session],
) -> None:
    with session_factory.begin() as session:
        _messages(session)
        with session.begin_nested():
            save_resources(session, [_patient("p4")], message_id=MESSAGE, now=NOW)
        save_resources(session, [_observation("o4", "p4")], message_id=MESSAGE, now=NOW)
    with session_factory() as session:
        assert _reference_rows(session, "o4") == [(None, _key_of(session, "Patient", "p4"))]

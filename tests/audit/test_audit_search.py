"""The audit search by entity and patient goes through audit_link's key (decision 0072):
every version of an entity, and nothing that only looks like it."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker

from adapter.audit.events import AuditEvent, record
from adapter.audit.search import search_records

REFERENCES = [
    "Observation/o1/_history/1",
    "Observation/o1/_history/12",
    "Observation/o1",  # a reference without version (a search result, a delete)
    "Observation/o1x/_history/1",  # another id that starts the same
    "Observation/o1/ahistory/1",  # "_" is not a wildcard
    "Observation/o1/_history0",
    "Observation/o2/_history/1",
]


def _fill(factory: sessionmaker[Session]) -> dict[str, int]:
    at = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    with factory.begin() as session:
        for n, reference in enumerate(REFERENCES):
            record(
                AuditEvent(
                    "fhir.read",
                    "success",
                    "anonymous",
                    reference,
                    f"req-{n}",
                    at,
                    entities=(reference,),
                    patients=(f"Patient/p{n % 2}",),
                ),
                session=session,
            )
    with factory() as session:
        _, found = search_records(session, [], count=100, offset=0)
        return {r.correlation_id: r.seq for r in found}


def _found(factory: sessionmaker[Session], params: list[tuple[str, str]]) -> list[str]:
    with factory() as session:
        total, page = search_records(session, params, count=100, offset=0)
    assert total == len(page)
    return sorted(REFERENCES[int(r.correlation_id.removeprefix("req-"))] for r in page)


def test_an_entity_without_version_finds_each_of_its_versions_and_only_them(
    session_factory: sessionmaker[Session],
) -> None:
    _fill(session_factory)
    assert _found(session_factory, [("entity", "Observation/o1")]) == sorted(
        ["Observation/o1/_history/1", "Observation/o1/_history/12", "Observation/o1"]
    )
    assert _found(session_factory, [("entity", "Observation/o1/_history/1")]) == [
        "Observation/o1/_history/1"
    ]
    assert _found(session_factory, [("entity", "Observation/o1x")]) == [
        "Observation/o1x/_history/1"
    ]
    assert _found(session_factory, [("entity", "Observation/o1,Observation/o2")]) == sorted(
        [
            "Observation/o1/_history/1",
            "Observation/o1/_history/12",
            "Observation/o1",
            "Observation/o2/_history/1",
        ]
    )
    assert _found(session_factory, [("patient", "p1")]) == sorted(REFERENCES[1::2])
    assert _found(session_factory, [("patient", "p0"), ("entity", "Observation/o1")]) == sorted(
        ["Observation/o1/_history/1", "Observation/o1"]
    )

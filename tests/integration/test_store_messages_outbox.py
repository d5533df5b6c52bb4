"""The inbound_message repository and the outbox."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import sessionmaker

from adapter.store import (
    count_messages,
    create_message,
    enqueue,
    enqueue_many,
    find_message,
    get_message,
    list_messages,
    set_message_result,
)
from adapter.store.models import Outbox
from tests.integration.delivery_support import store_named

T0 = datetime(2026, 5, 3, 2, 0, tzinfo=UTC)
RAW = "MSH|^~\\&|LIS|青山县人民医院|||20260503100000||ORU^R01|1|P|2.5\r".encode("gb18030")


def new_message(session, *, sha: str = "a" * 64, source: str = "lis", at: datetime = T0):
    return create_message(
        session,
        source_system=source,
        facility_id="qs-county",
        raw=RAW,
        content_type="application/hl7-v2",
        sha256=sha,
        detected_format="hl7v2",
        encoding="gb18030",
        received_at=at,
    )


def test_message_keeps_exact_bytes_and_metadata(session_factory: sessionmaker) -> None:
    with session_factory.begin() as session:
        message_id = new_message(session).id
    with session_factory() as session:
        message = get_message(session, message_id)
        assert message.raw == RAW and message.size == len(RAW)
        assert message.received_at == T0 and message.received_at.tzinfo is not None
        assert (message.status, message.issues, message.resources, message.attempts) == (
            "received",
            [],
            [],
            0,
        )
        assert find_message(session, "lis", "a" * 64).id == message_id
        assert find_message(session, "his", "a" * 64) is None


def test_same_bytes_from_same_source_are_refused_by_the_database(
    session_factory: sessionmaker,
) -> None:
    with session_factory.begin() as session:
        new_message(session)
    with pytest.raises(IntegrityError), session_factory.begin() as session:
        new_message(session)
    with session_factory.begin() as session:
        new_message(session, source="his")  # another source may send the same bytes


def test_set_message_result_records_outcome_and_counts_attempts(
    session_factory: sessionmaker,
) -> None:
    with session_factory.begin() as session:
        message = new_message(session)
        set_message_result(
            session,
            message,
            status="processed-with-warnings",
            issues=[
                {
                    "severity": "warning",
                    "code": "value",
                    "diagnostics": "unit missing",
                    "location": "OBX[2]-6",
                }
            ],
            resources=["Patient/p1", "Observation/o1"],
            now=T0,
        )
    with session_factory.begin() as session:
        message = get_message(session, message.id)
        set_message_result(
            session,
            message,
            status="processed",
            issues=[],
            resources=["Patient/p1"],
            now=T0 + timedelta(minutes=1),
        )
    with session_factory() as session:
        message = get_message(session, message.id)
        assert message.status == "processed" and message.attempts == 2
        assert message.resources == ["Patient/p1"]
        assert message.processed_at == T0 + timedelta(minutes=1)


def test_list_messages_newest_first_with_status_filter(session_factory: sessionmaker) -> None:
    with session_factory.begin() as session:
        for i in range(3):
            message = new_message(session, sha=str(i) * 64, at=T0 + timedelta(minutes=i))
            if i == 1:
                set_message_result(session, message, status="quarantined", issues=[], resources=[])
    with session_factory() as session:
        assert [m.sha256[0] for m in list_messages(session)] == ["2", "1", "0"]
        assert [m.sha256[0] for m in list_messages(session, limit=1, offset=1)] == ["1"]
        assert [m.sha256[0] for m in list_messages(session, status="quarantined")] == ["1"]
        assert count_messages(session) == 3
        assert count_messages(session, status="received") == 2


def test_enqueue_writes_pending_rows_due_now(session_factory: sessionmaker) -> None:
    with session_factory.begin() as session:
        store_named(  # an outbox row names a stored resource (decision 0084)
            session,
            [
                {"resource_type": "Observation", "resource_id": "o1", "patient_key": "Patient/p1"},
                {"resource_type": "Patient", "resource_id": "p1"},
            ],
        )
        enqueue(
            session,
            destination="regional-platform",
            resource_type="Observation",
            resource_id="o1",
            version_id=2,
            patient_key="Patient/p1",
            now=T0,
        )
        enqueue_many(
            session,
            [
                {
                    "destination": "county-emr",
                    "resource_type": "Patient",
                    "resource_id": "p1",
                    "version_id": 1,
                    "patient_key": "Patient/p1",
                },
            ],
            now=T0,
        )
    with session_factory() as session:
        rows = session.scalars(select(Outbox).order_by(Outbox.id)).all()
    assert [(r.destination, r.resource_type, r.version_id, r.state, r.attempts) for r in rows] == [
        ("regional-platform", "Observation", 2, "pending", 0),
        ("county-emr", "Patient", 1, "pending", 0),
    ]
    assert all(r.next_attempt_at == T0 and r.created_at == T0 for r in rows)


def test_outbox_state_is_constrained(session_factory: sessionmaker) -> None:
    with session_factory.begin() as session:
        store_named(session, [{"resource_type": "Patient", "resource_id": "p1"}])
        enqueue(
            session,
            destination="d",
            resource_type="Patient",
            resource_id="p1",
            version_id=1,
            patient_key=None,
        )
    # the state is a small integer (decision 0079): an unknown name is refused before it is
    # sent, an unknown number by the database's CHECK
    with pytest.raises(StatementError, match="not one of"), session_factory.begin() as session:
        row = session.scalars(select(Outbox)).one()
        row.state = "lost"
    with pytest.raises(IntegrityError), session_factory.begin() as session:
        session.execute(text("UPDATE outbox SET state = 9"))
    with session_factory() as session:
        assert session.scalars(select(Outbox.state)).one() == "pending"

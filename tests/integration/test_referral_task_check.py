"""The referral steps ask, for every event of a message (its Encounter, its discharge
summary's Composition ...), which records the patient's person has and whether any Task is
about them. The answers are read once per message and kept on its Work (decision 0044,
amended 2026-12-05), so a stale "no" must not hide a Task the message itself saved, and a
new message must read again. (A Task stored earlier in the same bulk batch:
test_bulk_ingest.py, test_a_search_in_a_batch_sees_what_the_batch_stored.)
Runs on SQLite and, in the ``-m db`` pass, on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, event
from sqlalchemy.orm import Session, sessionmaker

from adapter.pipeline.steps import Work
from adapter.referral.messages import has_tasks, records_about
from adapter.store import save_resources
from tests.integration.connector_helpers import example_translator

NOW = datetime(2026, 12, 5, 8, 0, tzinfo=UTC)


def _task(task_id: str, patient: str) -> dict[str, Any]:
    return {
        "resourceType": "Task",
        "id": task_id,
        "status": "requested",
        "intent": "order",
        "for": {"reference": f"Patient/{patient}"},
    }


def _work(session: Session) -> Work:
    consortium = example_translator().consortium
    return Work(
        session=session,
        message=None,  # type: ignore[arg-type]  # the checks never read the message
        consortium=consortium,
        facility=consortium.facilities[0],
        zone=ZoneInfo("Asia/Shanghai"),
        moment=NOW,
        resources=[],
        policies={},
        issues=[],
    )


@pytest.fixture
def statements(engine: Engine) -> Iterator[list[str]]:
    seen: list[str] = []

    def keep(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", keep)
    yield seen
    event.remove(engine, "before_cursor_execute", keep)


def test_the_task_check_is_read_once_per_message_and_again_once_it_saved_a_task(
    session_factory: sessionmaker[Session], statements: list[str]
) -> None:
    with session_factory.begin() as session:
        work = _work(session)
        records = records_about(work, "Patient/p1")
        assert records == ["p1"]  # a record the index does not know is its own person

        statements.clear()
        assert has_tasks(work, records) is False
        asked = len(statements)
        assert asked == 1
        assert records_about(work, "Patient/p1") == records
        assert has_tasks(work, records) is False
        assert len(statements) == asked  # the second event of the message asks nothing

        # the message itself stores a Task about the patient: the "no" is asked again
        work.saved.extend(save_resources(session, [_task("t1", "p1")], message_id=None, now=NOW))
        assert has_tasks(work, records) is True
        # another patient's answer is its own
        assert has_tasks(work, records_about(work, "Patient/p2")) is False


def test_a_new_message_reads_again(session_factory: sessionmaker[Session]) -> None:
    with session_factory.begin() as session:
        first = _work(session)
        assert has_tasks(first, records_about(first, "Patient/p3")) is False
        # stored outside the message's steps (an earlier message of the same batch)
        save_resources(session, [_task("t3", "p3")], message_id=None, now=NOW)
        second = _work(session)
        assert has_tasks(second, records_about(second, "Patient/p3")) is True

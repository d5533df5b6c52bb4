"""A message whose transaction PostgreSQL rolled back to break a deadlock is tried again
after a pause that doubles (``try_again``), not four times at once: the other side of such
a deadlock is often a bulk batch of another ``adapter sync --jobs`` share that holds its
locks until its commit (decision 0061)."""

from __future__ import annotations

import itertools
import threading
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

import adapter.pipeline.ingest as ingest_module
from adapter.pipeline.receipt import Receipt
from tests.integration.connector_helpers import example_pipeline
from tests.integration.test_long_values import long_oru


def _a_real_deadlock(engine: Engine) -> OperationalError:
    """The error PostgreSQL gives the victim of a deadlock, made on purpose: two
    transactions take two advisory locks in opposite orders."""
    errors: list[OperationalError] = []
    both_hold_one = threading.Barrier(2)

    def lock(first: int, then: int) -> None:
        try:
            with engine.begin() as conn:
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": 910_000 + first})
                both_hold_one.wait()
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": 910_000 + then})
        except OperationalError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=lock, args=pair) for pair in ((1, 2), (2, 1))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(errors) == 1 and ingest_module._lost_race(errors[0])
    return errors[0]


@pytest.fixture
def deadlock(engine: Engine) -> OperationalError:
    if engine.dialect.name != "postgresql":
        pytest.skip("deadlocks between transactions: PostgreSQL (SQLite has one writer)")
    return _a_real_deadlock(engine)


def _victim_times(
    monkeypatch: pytest.MonkeyPatch, pipeline: Any, error: OperationalError, times: int
) -> list[float]:
    """The pipeline's transactions are chosen as the deadlock's victim ``times`` times, then
    run; the pauses slept between tries are returned."""
    settle = pipeline._settle
    failures = iter(range(times))
    pauses: list[float] = []

    def settle_or_fail(job: Any) -> Any:
        if next(failures, None) is not None:
            raise error
        return settle(job)

    monkeypatch.setattr(pipeline, "_settle", settle_or_fail)
    monkeypatch.setattr(ingest_module.time, "sleep", pauses.append)
    return pauses


def test_a_deadlock_victim_is_tried_again_after_growing_pauses(
    session_factory: sessionmaker[Session],
    deadlock: OperationalError,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pipeline = example_pipeline(session_factory)
    pauses = _victim_times(monkeypatch, pipeline, deadlock, 6)  # more than the old 3 retries
    result = pipeline.ingest(long_oru(control="DEAD0001"), Receipt("std-hl7v2", "http"))
    assert result.status == "processed" and not result.duplicate
    assert len(pauses) == 6
    assert all(b > a for a, b in itertools.pairwise(pauses))  # jittered, doubling
    assert pauses[0] <= ingest_module._DEADLOCK_PAUSE and max(pauses) <= 2.0


def test_a_database_that_keeps_choosing_it_is_an_error_to_send_again(
    session_factory: sessionmaker[Session],
    deadlock: OperationalError,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pipeline = example_pipeline(session_factory)
    retries = ingest_module._DEADLOCK_RETRIES
    pauses = _victim_times(monkeypatch, pipeline, deadlock, retries + 1)
    with pytest.raises(OperationalError):
        pipeline.ingest(long_oru(control="DEAD0002"), Receipt("std-hl7v2", "http"))
    assert len(pauses) == retries
    # nothing half-kept: the same bytes sent again are new and stored
    monkeypatch.undo()
    again = example_pipeline(session_factory)
    result = again.ingest(long_oru(control="DEAD0002"), Receipt("std-hl7v2", "http"))
    assert result.status == "processed" and not result.duplicate

"""The retry schedule of a destination (tenacity strategies asked row by row)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from adapter.consortium import RetryPolicy
from adapter.delivery.policy import Schedule

NOW = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("attempts", "low", "high"),
    [(1, 2.0, 4.0), (2, 4.0, 6.0), (3, 8.0, 10.0), (4, 16.0, 18.0), (6, 50.0, 50.0)],
)
def test_backoff_doubles_with_up_to_one_initial_wait_of_jitter_and_is_capped(
    attempts: int, low: float, high: float
) -> None:
    schedule = Schedule(RetryPolicy(initial_backoff_seconds=2, max_backoff_seconds=50))
    waits = {schedule.backoff(attempts) for _ in range(200)}
    assert all(low <= w <= high for w in waits)
    if low < high:
        assert len(waits) > 1  # jittered


def test_a_longer_retry_after_wins_a_shorter_one_does_not() -> None:
    schedule = Schedule(RetryPolicy(initial_backoff_seconds=10, max_backoff_seconds=600))
    longer = schedule.after_failure(attempts=1, first_attempt_at=NOW, now=NOW, retry_after=90)
    assert longer.retry_at == NOW + timedelta(seconds=90)
    shorter = schedule.after_failure(attempts=1, first_attempt_at=NOW, now=NOW, retry_after=1)
    assert shorter.retry_at is not None
    assert NOW + timedelta(seconds=10) <= shorter.retry_at <= NOW + timedelta(seconds=20)


def test_gives_up_after_max_attempts() -> None:
    schedule = Schedule(RetryPolicy(max_attempts=4))
    assert schedule.after_failure(attempts=3, first_attempt_at=NOW, now=NOW).retry_at
    last = schedule.after_failure(attempts=4, first_attempt_at=NOW, now=NOW)
    assert last.retry_at is None and "gave up after 4 attempts" in last.reason


def test_gives_up_when_the_next_try_would_pass_max_age() -> None:
    schedule = Schedule(
        RetryPolicy(max_age_seconds=100, initial_backoff_seconds=5, max_backoff_seconds=5)
    )
    first = NOW - timedelta(seconds=80)
    assert schedule.after_failure(attempts=2, first_attempt_at=first, now=NOW).retry_at
    late = schedule.after_failure(
        attempts=2, first_attempt_at=first, now=NOW, retry_after=30
    )  # would be 110 s after the first try
    assert late.retry_at is None and "max_age_seconds 100" in late.reason

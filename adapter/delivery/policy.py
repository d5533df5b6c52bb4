"""When to try a failed delivery again, and when to give it up (tenacity strategies).

The worker does not sleep between tries: it writes the time of the next try into the outbox
row. So tenacity's strategies are asked directly, with a ``RetryCallState`` that describes
the row (tries made, time since the first try), instead of wrapping a call in ``Retrying``.
``Retry-After`` reaches it already in seconds (``DeliveryError.retry_after``, read by the
connector from the header: delta-seconds or an HTTP date).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from tenacity import (
    RetryCallState,
    stop_after_attempt,
    stop_before_delay,
    wait_exponential_jitter,
)

from adapter.consortium import RetryPolicy


@dataclass(frozen=True, slots=True)
class Decision:
    """``retry_at`` is set when another try is due; else ``reason`` says why it is dead."""

    retry_at: datetime | None
    wait_seconds: float = 0.0
    reason: str | None = None


class Schedule:
    """The retry schedule of one destination, from its ``RetryPolicy``.

    Try n (n >= 1 failed tries so far) waits ``initial * 2**(n-1)`` plus up to ``initial``
    of random jitter, at most ``max_backoff``; a longer ``Retry-After`` from the destination
    wins. The item is given up after ``max_attempts`` tries, or when the next try would come
    ``max_age`` or later after the first one.
    """

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self._wait = wait_exponential_jitter(
            multiplier=policy.initial_backoff_seconds,
            max=policy.max_backoff_seconds,
            jitter=policy.initial_backoff_seconds,
        )
        self._stop_attempts = stop_after_attempt(policy.max_attempts)
        self._stop_age = stop_before_delay(policy.max_age_seconds)

    def backoff(self, attempts: int) -> float:
        """Seconds to wait after the ``attempts``-th failed try (1-based), with jitter."""
        return float(self._wait(_state(attempts, 0.0)))

    def after_failure(
        self,
        *,
        attempts: int,
        first_attempt_at: datetime,
        now: datetime,
        retry_after: float | None = None,
    ) -> Decision:
        """What to do after the ``attempts``-th try failed with a retriable error."""
        age = max(0.0, (now - first_attempt_at).total_seconds())
        if self._stop_attempts(_state(attempts, age)):
            return Decision(
                None,
                reason=f"gave up after {attempts} attempts "
                f"(max_attempts {self.policy.max_attempts})",
            )
        wait = self.backoff(attempts)
        if retry_after is not None and retry_after > wait:
            wait = retry_after
        if self._stop_age(_state(attempts, age, upcoming=wait)):
            return Decision(
                None,
                wait,
                reason=(
                    f"gave up after {attempts} attempts: the next one would come "
                    f"{age + wait:.0f} s after the first (max_age_seconds "
                    f"{self.policy.max_age_seconds:g})"
                ),
            )
        return Decision(now + timedelta(seconds=wait), wait)


def _state(attempts: int, age: float, upcoming: float = 0.0) -> RetryCallState:
    state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
    state.attempt_number = attempts
    state.start_time = 0.0
    state.outcome_timestamp = age
    state.upcoming_sleep = upcoming
    return state

"""The failure limiter of POST /auth/token: per client id and address, a sliding window,
``Retry-After`` until the oldest failure leaves it, forgiven by a success."""

from __future__ import annotations

from adapter.auth.ratelimit import FailureLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_limit_holds_per_client_and_address_until_the_window_passes() -> None:
    clock = Clock()
    limiter = FailureLimiter(3, 60.0, clock)
    for step in range(3):
        assert limiter.retry_after("a", "10.0.0.1") is None
        limiter.failed("a", "10.0.0.1")
        clock.now += 10 * (step + 1)  # failures at 1000, 1010, 1030
    clock.now = 1059.5  # the first failure (1000) leaves the window at 1060
    assert limiter.retry_after("a", "10.0.0.1") == 1
    assert limiter.retry_after("a", "10.0.0.2") is None  # another address
    assert limiter.retry_after("b", "10.0.0.1") is None  # another client
    clock.now = 1060.0
    assert limiter.retry_after("a", "10.0.0.1") is None  # the first failure left the window
    limiter.failed("a", "10.0.0.1")
    assert limiter.retry_after("a", "10.0.0.1") == 10  # 1010 leaves at 1070


def test_a_success_forgives() -> None:
    limiter = FailureLimiter(2, 60.0, Clock())
    limiter.failed("a", "x")
    limiter.succeeded("a", "x")
    limiter.failed("a", "x")
    assert limiter.retry_after("a", "x") is None

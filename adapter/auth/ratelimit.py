"""Failed token requests counted per (client id, address) in a sliding window: past the
limit, the token endpoint answers 429 with ``Retry-After`` without checking the secret
(argon2 is slow on purpose; guessing is slowed to the limit). In memory, per process:
a restart forgives, which the window would do anyway."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable

_MAX_KEYS = 100_000  # a flood of made-up client ids cannot grow this without bound


class FailureLimiter:
    def __init__(
        self, limit: int, window: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit, self.window, self.clock = limit, window, clock
        self._failures: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: tuple[str, str], now: float) -> deque[float]:
        times = self._failures.get(key) or deque()
        while times and times[0] <= now - self.window:
            times.popleft()
        return times

    def retry_after(self, client_id: str, address: str) -> int | None:
        """Seconds to wait when this client and address are over the limit, else None."""
        key = (client_id, address)
        with self._lock:
            now = self.clock()
            times = self._recent(key, now)
            if not times:
                self._failures.pop(key, None)
            if len(times) < self.limit:
                return None
            return max(1, math.ceil(times[0] + self.window - now))

    def failed(self, client_id: str, address: str) -> None:
        key = (client_id, address)
        with self._lock:
            now = self.clock()
            if key not in self._failures and len(self._failures) >= _MAX_KEYS:
                self._failures.clear()  # crude but bounded; the window would forget anyway
            times = self._recent(key, now)
            times.append(now)
            self._failures[key] = times

    def succeeded(self, client_id: str, address: str) -> None:
        with self._lock:
            self._failures.pop((client_id, address), None)

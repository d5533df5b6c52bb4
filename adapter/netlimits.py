"""Shared by the HTTP server and the MLLP listener: connection limits that make room by
closing the connection that has been silent longest, and log lines said once, not per
connection.

When the limit is reached, the new connection is let in by closing the connection that
has been *silent longest while it was still sending a request* (or idle between
requests), if it has been silent for at least a second: slow or stuck clients are the ones
that give way, a sender that is sending is never cut off. When every connection is busy
(its request is being processed), the new one is refused.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from typing import Protocol, TypeVar


class Evictable(Protocol):
    def silent_since(self) -> float | None:
        """monotonic() of its last activity while waiting for the client; None: busy."""
        ...


MIN_SILENCE_SECONDS = 1.0
T = TypeVar("T", bound=Evictable)


def longest_silent(
    connections: Iterable[T], *, now: float | None = None, min_silence: float = MIN_SILENCE_SECONDS
) -> T | None:
    """The connection to close to make room, or None when none may be."""
    moment = time.monotonic() if now is None else now
    best: T | None = None
    best_since = moment - min_silence
    for connection in connections:
        since = connection.silent_since()
        if since is not None and since <= best_since:
            best, best_since = connection, since
    return best


class SaidOnce:
    """A log line said the first time, then at most once per ``interval`` seconds with how
    many times it happened meanwhile, however many connections hit it."""

    def __init__(self, logger: logging.Logger, interval: float = 60.0) -> None:
        self.logger = logger
        self.interval = interval
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._count: dict[str, int] = {}

    def warning(self, key: str, text: str) -> None:
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.interval:
                self._count[key] = self._count.get(key, 0) + 1
                return
            missed = self._count.pop(key, 0)
            self._last[key] = now
        if missed:
            text += f" ({missed} more times in the last {now - last:.0f} s)"  # type: ignore[operator]
        elif last is None:
            text += f" (said once per {self.interval:g} s however often it happens)"
        self.logger.warning("%s", text)


class RepeatFilter(logging.Filter):
    """Lets through the first record of each message template, then one per ``interval``
    seconds: for loggers outside the adapter that may repeat a line per connection
    (asyncio's "socket.accept() out of system resource" when file descriptors run out)."""

    def __init__(self, interval: float = 60.0) -> None:
        super().__init__()
        self.interval = interval
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        now = time.monotonic()
        key = str(record.msg)
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.interval:
                return False
            self._last[key] = now
        return True

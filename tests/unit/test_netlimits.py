"""The shared parts of the connection limits: who gives way, and lines said once."""

from __future__ import annotations

import logging

import pytest

from adapter.netlimits import RepeatFilter, SaidOnce, longest_silent


class _Connection:
    def __init__(self, since: float | None) -> None:
        self.since = since

    def silent_since(self) -> float | None:
        return self.since


def test_the_longest_silent_idle_connection_gives_way_never_a_busy_or_fresh_one() -> None:
    busy, old, older, fresh = (
        _Connection(None),
        _Connection(90.0),
        _Connection(80.0),
        _Connection(99.5),
    )
    assert longest_silent([busy, old, older, fresh], now=100.0) is older
    assert longest_silent([busy, fresh], now=100.0) is None  # silent under a second
    assert longest_silent([], now=100.0) is None


def test_a_line_is_said_once_then_counted(caplog: pytest.LogCaptureFixture) -> None:
    said = SaidOnce(logging.getLogger("test.said"), interval=60)
    with caplog.at_level("WARNING"):
        for _ in range(500):
            said.warning("too-many", "too many connections")
        said.warning("other", "another kind")
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert lines[0].startswith("too many connections (said once per 60 s")
    said.interval = 0  # the next one after the interval carries the count
    with caplog.at_level("WARNING"):
        said.warning("too-many", "too many connections")
    assert "499 more times" in caplog.records[-1].getMessage()


def test_repeat_filter_lets_one_record_per_template_through() -> None:
    keep = RepeatFilter(interval=60)
    record = logging.makeLogRecord({"msg": "socket.accept() out of system resource"})
    assert keep.filter(record)
    assert not any(keep.filter(record) for _ in range(100))
    assert keep.filter(logging.makeLogRecord({"msg": "something else"}))

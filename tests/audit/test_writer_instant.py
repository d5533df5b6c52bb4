"""The audit writer's recorded instant (decision 0148): a message's events share its
moment, formatted once; every text is ``format_instant``'s, whatever the zone or order."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from adapter.audit import writer
from adapter.fhir.dates import format_instant

ZONES = [UTC, ZoneInfo("Asia/Shanghai"), timezone(timedelta(hours=-5, minutes=-30))]


def test_every_instant_is_format_instant_s_text() -> None:
    chance = random.Random(14)
    start = datetime(2026, 3, 1, tzinfo=UTC)
    for _ in range(5000):
        at = (start + timedelta(microseconds=chance.randrange(10**12))).astimezone(
            chance.choice(ZONES)
        )
        for _ in range(chance.randrange(1, 4)):  # the same moment again, as a message's events
            assert writer._instant(at) == format_instant(at)
        same = at.astimezone(chance.choice(ZONES))  # the same instant in another zone
        assert writer._instant(same) == format_instant(same)
        near = at + timedelta(microseconds=chance.choice([1, 999, 1000, 1001]))
        assert writer._instant(near) == format_instant(near)


def test_the_moment_before_is_formatted_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[datetime] = []

    def counted(at: datetime) -> str:
        calls.append(at)
        return format_instant(at)

    monkeypatch.setattr(writer, "format_instant", counted)
    at = datetime(2026, 3, 1, 8, 0, 0, 123456, tzinfo=UTC)
    later = at + timedelta(milliseconds=1)
    texts = [writer._instant(m) for m in (at, at, at, later, later, at)]
    assert texts == [format_instant(m) for m in (at, at, at, later, later, at)]
    assert calls == [at, later, at]

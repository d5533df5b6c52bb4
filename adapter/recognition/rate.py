"""The monthly 互认率 per facility and item: recognised ÷ eligible, where eligible is every
item a doctor decided on (recognised + not recognised) in the month, in the consortium's
zone; the decisions not to recognise are counted by reason.

Until the reminders shown are logged, "eligible" counts decisions only: an item shown but
never decided on is not in the denominator (docs/recognition.md, statistics).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from adapter.store.models import RecognitionDecision


@dataclass(slots=True)
class Rate:
    facility_id: str
    item_code: str
    recognised: int = 0
    not_recognised: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    @property
    def eligible(self) -> int:
        return self.recognised + self.not_recognised

    @property
    def rate(self) -> float | None:
        return self.recognised / self.eligible if self.eligible else None

    def as_dict(self) -> dict[str, object]:
        return {
            "facility": self.facility_id,
            "item": self.item_code,
            "eligible": self.eligible,
            "recognised": self.recognised,
            "not_recognised": self.not_recognised,
            "rate": None if self.rate is None else round(self.rate, 4),
            "reasons": dict(sorted(self.reasons.items())),
        }


def month_range(month: str, zone: ZoneInfo) -> tuple[dt.datetime, dt.datetime]:
    """``2026-11`` as [first instant, first instant of the next month) in ``zone``."""
    try:
        year, number = (int(part) for part in month.split("-"))
        start = dt.datetime(year, number, 1, tzinfo=zone)
    except ValueError:
        raise ValueError(f"month {month[:16]!r}: give YYYY-MM, e.g. 2026-11") from None
    end = dt.datetime(year + number // 12, number % 12 + 1, 1, tzinfo=zone)
    return start, end


def monthly_rates(
    session: Session, month: str, zone: ZoneInfo, *, facility_id: str | None = None
) -> list[Rate]:
    start, end = month_range(month, zone)
    d = RecognitionDecision
    query = select(d.facility_id, d.item_code, d.decision, d.reason_code).where(
        d.decided_at >= start, d.decided_at < end
    )
    if facility_id:
        query = query.where(d.facility_id == facility_id)
    rates: dict[tuple[str, str], Rate] = {}
    for row in session.execute(query):
        rate = rates.setdefault(
            (row.facility_id, row.item_code), Rate(row.facility_id, row.item_code)
        )
        if row.decision == "recognised":
            rate.recognised += 1
        else:
            rate.not_recognised += 1
            rate.reasons[row.reason_code] = rate.reasons.get(row.reason_code, 0) + 1
    return [rates[key] for key in sorted(rates)]

"""The monthly 互认率 per ordering facility and item, over a calendar month in the
consortium's zone:

    shown        reminders shown (``$recognisable`` POSTed), at encounter start or ordering
    eligible     ordered items with a recognisable prior result: the ordering reminders
                 that showed one, and every item a doctor decided on (distinct per patient,
                 order and item)
    recognised   decisions 互认; not recognised: decisions 不互认, counted by reason
    rate         recognised ÷ eligible (NIT "检查检验结果互认率": ResultRecognized ÷
                 ResultRecognitionEligible)

An eligible item never decided on counts against the rate: the reminder was shown and the
test ordered anyway, with no reason recorded.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from adapter.store.models import RecognitionDecision, RecognitionReminder


@dataclass(slots=True)
class Rate:
    facility_id: str
    item_code: str
    shown: int = 0
    recognised: int = 0
    not_recognised: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    eligible_orders: set[tuple[str, str]] = field(default_factory=set)  # (patient, order)

    @property
    def eligible(self) -> int:
        return len(self.eligible_orders)

    @property
    def rate(self) -> float | None:
        return self.recognised / self.eligible if self.eligible else None

    def as_dict(self) -> dict[str, object]:
        return {
            "facility": self.facility_id,
            "item": self.item_code,
            "shown": self.shown,
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
    rates: dict[tuple[str, str], Rate] = {}

    def of(facility: str, item: str) -> Rate:
        return rates.setdefault((facility, item), Rate(facility, item))

    d = RecognitionDecision
    decisions = select(
        d.facility_id, d.item_code, d.patient_id, d.order_id, d.decision, d.reason_code
    ).where(d.decided_at >= start, d.decided_at < end)
    r = RecognitionReminder
    reminders = select(
        r.facility_id, r.item_code, r.patient_id, r.context, r.trigger, r.recognisable
    ).where(r.shown_at >= start, r.shown_at < end)
    if facility_id:
        decisions = decisions.where(d.facility_id == facility_id)
        reminders = reminders.where(r.facility_id == facility_id)
    for row in session.execute(decisions):
        rate = of(row.facility_id, row.item_code)
        rate.eligible_orders.add((row.patient_id, row.order_id))
        if row.decision == "recognised":
            rate.recognised += 1
        else:
            rate.not_recognised += 1
            rate.reasons[row.reason_code] = rate.reasons.get(row.reason_code, 0) + 1
    for row in session.execute(reminders):
        rate = of(row.facility_id, row.item_code)
        rate.shown += 1
        if row.trigger == "order" and row.recognisable:
            rate.eligible_orders.add((row.patient_id, row.context))
    return [rates[key] for key in sorted(rates)]

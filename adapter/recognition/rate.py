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
test ordered anyway, with no reason recorded. Also counted: ``viewed`` (reminders whose prior
result a doctor opened, 已查阅), tests avoided (= recognised) and the cost avoided (their
prices in the catalogue, where given). Grouped by facility and item, or by any of facility,
department, doctor and item.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from adapter.store.models import RecognitionDecision, RecognitionReminder

DIMENSIONS = ("facility", "department", "doctor", "item")
FEN = Decimal("0.01")


def yuan(amount: Decimal) -> str:
    """An amount in yuan to the fen, as text (JSON has no decimal type)."""
    return str(amount.quantize(FEN))


@dataclass(slots=True)
class Rate:
    """The figures of one group: by default an ordering facility and an item; the group's
    other dimensions are None when not asked for (``by``)."""

    facility_id: str | None
    item_code: str | None
    department: str | None = None
    doctor: str | None = None
    shown: int = 0
    viewed: int = 0
    recognised: int = 0
    not_recognised: int = 0
    saved: Decimal = Decimal(0)  # yuan: recognised results times the item's price
    priced: bool = False  # some recognised item had a price
    reasons: dict[str, int] = field(default_factory=dict)
    eligible_orders: set[tuple[str, str, str]] = field(default_factory=set)  # patient, order, item

    @property
    def eligible(self) -> int:
        return len(self.eligible_orders)

    @property
    def rate(self) -> float | None:
        return self.recognised / self.eligible if self.eligible else None

    def as_dict(self, by: tuple[str, ...] = ("facility", "item")) -> dict[str, object]:
        group = {
            "facility": self.facility_id,
            "department": self.department,
            "doctor": self.doctor,
            "item": self.item_code,
        }
        return {
            **{name: group[name] for name in DIMENSIONS if name in by},
            "shown": self.shown,
            "viewed": self.viewed,
            "eligible": self.eligible,
            "recognised": self.recognised,
            "not_recognised": self.not_recognised,
            "rate": None if self.rate is None else round(self.rate, 4),
            "tests_avoided": self.recognised,
            "cost_avoided": yuan(self.saved) if self.priced else None,
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
    session: Session,
    month: str,
    zone: ZoneInfo,
    *,
    facility_id: str | None = None,
    by: tuple[str, ...] = ("facility", "item"),
    prices: dict[str, Decimal] | None = None,
) -> list[Rate]:
    """The month's figures grouped ``by`` any of :data:`DIMENSIONS` (default facility and
    item); ``prices``: item code -> yuan, for the cost avoided."""
    unknown = [name for name in by if name not in DIMENSIONS]
    if unknown or not by:
        raise ValueError(f"by: one or more of {', '.join(DIMENSIONS)}")
    start, end = month_range(month, zone)
    rates: dict[tuple[str | None, ...], Rate] = {}
    prices = prices or {}

    def of(facility: str, item: str, department: str | None, doctor: str | None) -> Rate:
        values = {"facility": facility, "item": item, "department": department, "doctor": doctor}
        key = tuple(values[name] if name in by else None for name in DIMENSIONS)
        found = rates.get(key)
        if found is None:
            found = rates[key] = Rate(key[0], key[3], department=key[1], doctor=key[2])
        return found

    d = RecognitionDecision
    decisions = select(
        d.facility_id,
        d.item_code,
        d.department,
        d.doctor,
        d.patient_id,
        d.order_id,
        d.decision,
        d.reason_code,
    ).where(d.decided_at >= start, d.decided_at < end)
    r = RecognitionReminder
    reminders = select(
        r.facility_id,
        r.item_code,
        r.department,
        r.doctor,
        r.patient_id,
        r.context,
        r.trigger,
        r.recognisable,
        r.viewed_at,
    ).where(r.shown_at >= start, r.shown_at < end)
    if facility_id:
        decisions = decisions.where(d.facility_id == facility_id)
        reminders = reminders.where(r.facility_id == facility_id)
    for row in session.execute(decisions):
        rate = of(row.facility_id, row.item_code, row.department, row.doctor)
        rate.eligible_orders.add((row.patient_id, row.order_id, row.item_code))
        if row.decision == "recognised":
            rate.recognised += 1
            price = prices.get(row.item_code)
            if price is not None:
                rate.saved += price
                rate.priced = True
        else:
            rate.not_recognised += 1
            rate.reasons[row.reason_code] = rate.reasons.get(row.reason_code, 0) + 1
    for row in session.execute(reminders):
        rate = of(row.facility_id, row.item_code, row.department, row.doctor)
        rate.shown += 1
        if row.viewed_at is not None:
            rate.viewed += 1
        if row.trigger == "order" and row.recognisable:
            rate.eligible_orders.add((row.patient_id, row.context, row.item_code))
    return [rates[key] for key in sorted(rates, key=lambda k: tuple(v or "" for v in k))]


COLUMNS = {
    "facility": "机构 facility",
    "department": "科室 department",
    "doctor": "医生 doctor",
    "item": "项目 item",
    "shown": "提醒 shown",
    "viewed": "查阅 viewed",
    "eligible": "可互认 eligible",
    "recognised": "互认 recognised",
    "not_recognised": "不互认 not recognised",
    "rate": "互认率 rate",
    "tests_avoided": "减少检查 tests avoided",
    "cost_avoided": "节省费用(元) cost avoided",
    "reasons": "不互认原因 reasons",
}


def table(rates: list[Rate], by: tuple[str, ...]) -> tuple[list[str], list[list[object]]]:
    """Headers (Chinese and English) and rows for a CSV / XLSX export; numbers stay
    numbers (the rate a fraction, the cost in yuan)."""
    names = [*(n for n in DIMENSIONS if n in by), *list(COLUMNS)[4:]]
    rows: list[list[object]] = []
    for rate in rates:
        found = rate.as_dict(by)
        row: list[object] = []
        for name in names:
            value = found[name]
            if name == "reasons":
                value = "; ".join(f"{k} {n}" for k, n in found["reasons"].items())  # type: ignore[union-attr]
            elif name == "cost_avoided" and value is not None:
                value = Decimal(str(value))
            row.append(value)
        rows.append(row)
    return [COLUMNS[n] for n in names], rows


def prices_of(items: list) -> dict[str, Decimal]:
    """Item code -> price in yuan, for the items of the catalogue that have one."""
    return {item.code: item.price for item in items if item.price is not None}


def parse_by(value: str | None) -> tuple[str, ...]:
    """``facility,item`` (the default) or any of :data:`DIMENSIONS`, comma separated."""
    if not value:
        return ("facility", "item")
    names = tuple(dict.fromkeys(part.strip() for part in value.split(",") if part.strip()))
    if not names or any(name not in DIMENSIONS for name in names):
        raise ValueError(f"by: one or more of {', '.join(DIMENSIONS)}, comma separated")
    return names

"""The quarterly referral analysis (转诊分析, docs/ledger.md has every formula): from the
ledger rows of a period, per consortium or per facility (as sender or receiver). One
query for the period's rows (core rows, not ORM objects) and one for the period before
(the trend); everything else is counted in Python, the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from adapter.consortium import Consortium
from adapter.referral.rules import table
from adapter.store.models import ReferralLedger

T = ReferralLedger.__table__
AGE_BANDS = ((0, 14, "0-14"), (15, 44, "15-44"), (45, 59, "45-59"), (60, 74, "60-74"))
SEASONS = {12: "冬", 1: "冬", 2: "冬", 3: "春", 4: "春", 5: "春", 6: "夏", 7: "夏", 8: "夏"}
# ICD-10 chapters by the first three characters of the code (WHO ICD-10 2019)
CHAPTERS = (
    ("A00", "B99", "I 某些传染病和寄生虫病"),
    ("C00", "D48", "II 肿瘤"),
    ("D50", "D89", "III 血液及造血器官疾病和某些免疫疾患"),
    ("E00", "E90", "IV 内分泌、营养和代谢疾病"),
    ("F00", "F99", "V 精神和行为障碍"),
    ("G00", "G99", "VI 神经系统疾病"),
    ("H00", "H59", "VII 眼和附器疾病"),
    ("H60", "H95", "VIII 耳和乳突疾病"),
    ("I00", "I99", "IX 循环系统疾病"),
    ("J00", "J99", "X 呼吸系统疾病"),
    ("K00", "K93", "XI 消化系统疾病"),
    ("L00", "L99", "XII 皮肤和皮下组织疾病"),
    ("M00", "M99", "XIII 肌肉骨骼系统和结缔组织疾病"),
    ("N00", "N99", "XIV 泌尿生殖系统疾病"),
    ("O00", "O99", "XV 妊娠、分娩和产褥期"),
    ("P00", "P96", "XVI 起源于围生期的某些情况"),
    ("Q00", "Q99", "XVII 先天性畸形、变形和染色体异常"),
    ("R00", "R99", "XVIII 症状、体征和临床与实验室异常所见"),
    ("S00", "T98", "XIX 损伤、中毒和外因的某些其他后果"),
    ("V01", "Y98", "XX 疾病和死亡的外因"),
    ("Z00", "Z99", "XXI 影响健康状态和与保健机构接触的因素"),
    ("U00", "U99", "XXII 用于特殊目的的编码"),
)
COLUMNS = (
    "task_id",
    "request_id",
    "direction",
    "sender_facility",
    "receiver_facility",
    "diagnosis_code",
    "diagnosis_text",
    "reason",
    "sex",
    "age",
    "status",
    "business_status",
    "rejection_reason",
    "created_at",
    "accepted_at",
    "rejected_at",
    "arrived_at",
    "discharged_at",
    "feedback_at",
    "followed_up_at",
    "missing",
    "backfilled",
    "out_of_county",
    "emergency",
    "green_channel",
)


def chapter(code: str | None) -> str:
    key = (code or "").upper()[:3]
    if len(key) < 3:
        return "未编码"
    return next((name for low, high, name in CHAPTERS if low <= key <= high), "未编码")


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


PROGRESS_EVERY = 1000


def _fetch(
    session: Session,
    start: datetime,
    end: datetime,
    facility: str | None,
    progress: Callable[[int], None] | None = None,
) -> list[Any]:
    q = select(*(T.c[name] for name in COLUMNS)).where(
        T.c.created_at >= start, T.c.created_at < end
    )
    if facility:
        q = q.where(or_(T.c.sender_facility == facility, T.c.receiver_facility == facility))
    if progress is None:
        return list(session.execute(q))
    found: list[Any] = []
    for row in session.execute(q.execution_options(yield_per=PROGRESS_EVERY)):
        found.append(row)
        if len(found) % PROGRESS_EVERY == 0:
            progress(len(found))
    return found


def _top(counter: Counter[str], n: int = 10) -> list[dict[str, Any]]:
    return [{"key": key, "count": count} for key, count in counter.most_common(n)]


def analyse(
    session: Session,
    consortium: Consortium,
    start: datetime,
    end: datetime,
    *,
    facility: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Every figure of the quarterly analysis for [start, end) (docs/ledger.md).
    ``progress``: told the rows read every 1000 and each of the two periods read (the
    period, and the one before it for the trend), for a command's long runs."""
    zone = ZoneInfo(consortium.timezone or "Asia/Shanghai")
    rules = consortium.referrals.deadlines
    tell = progress or (lambda _text: None)
    rows = _fetch(
        session, start, end, facility, progress and (lambda n: tell(f"{n} rows read ..."))
    )
    tell(f"period 1/2 read: {len(rows)} rows")
    before = _fetch(
        session,
        start - (end - start),
        start,
        facility,
        progress and (lambda n: tell(f"{n} rows of the period before read ...")),
    )
    tell(f"period 2/2 read (the period before, for the trend): {len(before)} rows")
    names = {f.id: f.name for f in consortium.facilities}
    reasons = table().reasons
    # one referral (ServiceRequest) counts once for directions, whatever its receivers
    referrals = {r.request_id: r for r in rows}
    directions = Counter(r.direction for r in referrals.values())
    pairs = Counter((r.sender_facility, r.receiver_facility, r.direction) for r in rows)
    months: dict[str, Counter[str]] = {}
    for r in referrals.values():
        months.setdefault(r.created_at.astimezone(zone).strftime("%Y-%m"), Counter())[
            r.direction
        ] += 1
    previous = Counter(r.direction for r in {r.request_id: r for r in before}.values())
    diagnoses: dict[str, dict[str, Counter[str]]] = {}
    for r in referrals.values():
        by = diagnoses.setdefault(r.direction, {"chapter": Counter(), "code": Counter()})
        by["chapter"][chapter(r.diagnosis_code)] += 1
        label = (
            f"{r.diagnosis_code} {r.diagnosis_text or ''}".strip() if r.diagnosis_code else "未编码"
        )
        by["code"][label] += 1
    answered = [r for r in rows if r.status not in ("draft", "entered-in-error")]
    accepted = [r for r in answered if r.accepted_at is not None]
    arrived = [r for r in accepted if r.arrived_at is not None]
    waits = [(r.accepted_at - r.created_at).total_seconds() / 60 for r in accepted]
    feedback_due = [r for r in arrived if r.direction != "down"]
    feedback_ok = [
        r
        for r in feedback_due
        if (done := r.feedback_at or r.discharged_at) is not None
        and done <= r.arrived_at + timedelta(days=rules.feedback_days)
    ]
    discharged_up = [r for r in rows if r.direction != "down" and r.discharged_at is not None]
    followed = [
        r
        for r in discharged_up
        if r.followed_up_at is not None
        and r.followed_up_at <= r.discharged_at + timedelta(days=rules.follow_up_days)
    ]
    return {
        "period": {"from": start.isoformat(), "to": end.isoformat(), "facility": facility},
        "referrals": len(referrals),
        "tasks": len(rows),
        "counts": {d: directions.get(d, 0) for d in ("up", "down", "same")},
        "pairs": [
            {
                "sender": s,
                "sender_name": names.get(s or "", s),
                "receiver": t,
                "receiver_name": names.get(t or "", t),
                "direction": d,
                "count": n,
            }
            for (s, t, d), n in sorted(pairs.items(), key=lambda p: (-p[1], str(p[0])))
        ],
        "down_ratio": _rate(directions.get("down", 0), directions.get("up", 0)),
        "down_share": _rate(
            directions.get("down", 0), directions.get("up", 0) + directions.get("down", 0)
        ),
        "down_ratio_trend": {
            "by_month": [
                {
                    "month": month,
                    "up": c.get("up", 0),
                    "down": c.get("down", 0),
                    "down_ratio": _rate(c.get("down", 0), c.get("up", 0)),
                }
                for month, c in sorted(months.items())
            ],
            "previous_period": _rate(previous.get("down", 0), previous.get("up", 0)),
        },
        "diagnoses": {
            d: {"chapters": _top(by["chapter"]), "codes": _top(by["code"])}
            for d, by in sorted(diagnoses.items())
        },
        "reasons": _top(Counter(r.reason or "未填写" for r in referrals.values()), 20),
        "sex": dict(Counter(r.sex or "unknown" for r in referrals.values())),
        "age_bands": dict(Counter(_band(r.age) for r in referrals.values())),
        "months": {m: sum(c.values()) for m, c in sorted(months.items())},
        "seasons": dict(
            Counter(
                SEASONS.get(r.created_at.astimezone(zone).month, "秋") for r in referrals.values()
            )
        ),
        "acceptance_rate": _rate(len(accepted), len(answered)),
        "median_minutes_to_accept": round(statistics.median(waits), 1) if waits else None,
        "arrival_rate": _rate(len(arrived), len(accepted)),
        "feedback_within_deadline_rate": _rate(len(feedback_ok), len(feedback_due)),
        "follow_up_within_5_days_rate": _rate(len(followed), len(discharged_up)),
        "rejections": len([r for r in rows if r.rejected_at is not None]),
        "rejection_reasons": _top(
            Counter(
                reasons.get(r.rejection_reason or "", r.rejection_reason or "未填写")
                for r in rows
                if r.status == "rejected"
            )
        ),
        "closed_without_feedback": sum(
            1 for r in rows if r.business_status == "closed-without-feedback"
        ),
        "incomplete_slips": sum(1 for r in referrals.values() if r.missing),
        "late_slips": sum(1 for r in referrals.values() if r.backfilled),
        "emergency": sum(1 for r in referrals.values() if r.emergency or r.green_channel),
        "county": county_figures(rows, consortium, facility),
    }


def county_facilities(consortium: Consortium) -> set[str]:
    """The facilities inside the county (县域内): ``referrals.county_facilities``, else
    every member facility of the consortium file."""
    members = {f.id for f in consortium.facilities}
    listed = consortium.referrals.county_facilities
    return members if listed is None else members & set(listed)


def county_figures(rows: list[Any], consortium: Consortium, facility: str | None) -> dict[str, Any]:
    """The referral part of 县域内就诊率 (docs/ledger.md): of the referrals a facility
    inside the county sent, the share whose every receiver is inside the county too; for
    all directions and for up-referrals, for the consortium (or ``facility``) and per
    sending facility. Referrals that came from outside the county are counted apart."""
    inside = county_facilities(consortium)
    names = {f.id: f.name for f in consortium.facilities}
    referrals: dict[str, dict[str, Any]] = {}
    for r in rows:
        item = referrals.setdefault(
            r.request_id,
            {"sender": r.sender_facility, "direction": r.direction, "out": False},
        )
        item["out"] = item["out"] or r.receiver_facility not in inside
    sent = [
        item
        for item in referrals.values()
        if item["sender"] in inside and (facility is None or item["sender"] == facility)
    ]

    def shares(items: list[dict[str, Any]]) -> dict[str, Any]:
        out = sum(1 for item in items if item["out"])
        return {
            "sent": len(items),
            "in_county": len(items) - out,
            "out_of_county": out,
            "in_county_share": _rate(len(items) - out, len(items)),
            "out_of_county_share": _rate(out, len(items)),
        }

    by_sender: dict[str, list[dict[str, Any]]] = {}
    for item in sent:
        by_sender.setdefault(item["sender"], []).append(item)
    return {
        **shares(sent),
        "up": shares([item for item in sent if item["direction"] == "up"]),
        "from_outside": sum(
            1
            for item in referrals.values()
            if item["sender"] not in inside and (facility is None or item["sender"] != facility)
        ),
        "by_facility": [
            {
                "facility": sender,
                "name": names.get(sender, sender),
                **{
                    f"up_{k}": v
                    for k, v in shares([i for i in items if i["direction"] == "up"]).items()
                },
                **shares(items),
            }
            for sender, items in sorted(by_sender.items())
        ],
    }


def _band(age: int | None) -> str:
    if age is None:
        return "unknown"
    return next((name for low, high, name in AGE_BANDS if low <= age <= high), "75+")


def flat(result: dict[str, Any]) -> Iterator[list[Any]]:
    """The analysis as rows (指标, 分组, 数值) for CSV / XLSX: numbers stay numbers."""
    yield from _flat("", result)


def _flat(prefix: str, value: Any) -> Iterator[list[Any]]:
    if isinstance(value, dict):
        if "key" in value and "count" in value:
            yield [prefix, value["key"], value["count"]]
            return
        for key, item in value.items():
            yield from _flat(f"{prefix}.{key}" if prefix else str(key), item)
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, dict) and not ("key" in item and "count" in item):
                # the group is the item's words (a facility, a month); its figures (a rate
                # with nothing to divide is None: an empty cell) are the rows
                figures = [k for k, v in item.items() if _figure(k, v)]
                group = " / ".join(
                    str(v) for k, v in item.items() if k not in figures and v is not None
                )
                for key in figures:
                    yield [f"{prefix}.{key}", group, item[key]]
            else:
                yield from _flat(prefix, item)
    else:
        yield [prefix, "", value]


def _figure(key: str, value: Any) -> bool:
    if key == "month":
        return False
    if value is None:
        return key.endswith(("_share", "_rate", "_ratio"))
    return isinstance(value, int | float) and not isinstance(value, bool)


def headers() -> list[str]:
    return ["指标", "分组", "数值"]


def quarter(year: int, number: int, zone: ZoneInfo) -> tuple[datetime, datetime]:
    if number not in (1, 2, 3, 4):
        raise ValueError("a quarter is 1 to 4")
    start = datetime(year, 3 * number - 2, 1, tzinfo=zone)
    end = datetime(year + (number == 4), 1 if number == 4 else 3 * number + 1, 1, tzinfo=zone)
    return start, end

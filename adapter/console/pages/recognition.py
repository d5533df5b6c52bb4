"""互认 Recognition (检查检验结果互认): the catalogue and the qualifications in force, and
the 互认率 as charts with their numbers beside them: by month (the last six), by facility
and item for the chosen month, and the reasons for not recognising. The same figures as
``GET /recognition/rate`` (adapter/recognition/rate.py); a facility's client sees its
facility's rates, a client of ``scope: consortium`` every facility's. The charts are drawn
by Apache ECharts, served by the adapter (adapter/console/static/vendor/echarts)."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from adapter.api.deps import SessionDep
from adapter.api.facility import own_facility
from adapter.console.i18n import Translator, language_of
from adapter.console.render import page
from adapter.recognition.query import zone_of
from adapter.recognition.rate import monthly_rates

router = APIRouter(include_in_schema=False)
MONTHS = 6


def _months(last: str, count: int) -> list[str]:
    year, month = (int(p) for p in last.split("-"))
    out = []
    for _ in range(count):
        out.append(f"{year:04d}-{month:02d}")
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return out[::-1]


def _ratio(recognised: int, eligible: int) -> float | None:
    return round(recognised / eligible, 4) if eligible else None


@router.get("/console/recognition", name="console_recognition", response_class=HTMLResponse)
def console_recognition(
    request: Request, session: SessionDep, month: str | None = None
) -> HTMLResponse:
    catalogue = getattr(request.app.state, "recognition", None)
    consortium = request.app.state.consortium
    zone = zone_of(consortium)
    today = dt.datetime.now(zone).date()
    if not month or len(month) != 7 or month[4] != "-" or not month.replace("-", "").isdigit():
        month = f"{today.year:04d}-{today.month:02d}"
    facility = own_facility(request)
    t = Translator(language_of(request))
    try:
        rates = monthly_rates(session, month, zone, facility_id=facility)
    except ValueError:
        month = f"{today.year:04d}-{today.month:02d}"
        rates = monthly_rates(session, month, zone, facility_id=facility)
    trend = []
    for m in _months(month, MONTHS):
        found = rates if m == month else monthly_rates(session, m, zone, facility_id=facility)
        recognised = sum(r.recognised for r in found)
        eligible = sum(r.eligible for r in found)
        trend.append(
            {
                "month": m,
                "recognised": recognised,
                "eligible": eligible,
                "rate": _ratio(recognised, eligible),
            }
        )
    by_facility: dict[str, list[int]] = {}
    by_item: dict[str, list[int]] = {}
    reasons: Counter[str] = Counter()
    for r in rates:
        pair = by_facility.setdefault(r.facility_id, [0, 0])
        pair[0] += r.recognised
        pair[1] += r.eligible
        item = by_item.setdefault(r.item_code, [0, 0])
        item[0] += r.recognised
        item[1] += r.eligible
        reasons.update(r.reasons)
    names = {f.id: f.name for f in consortium.facilities}
    reason_names = {r.code: r.display for r in catalogue.reasons} if catalogue else {}
    items = {i.code: i.name for i in catalogue.items} if catalogue else {}
    facilities = [
        {
            "facility": f,
            "name": names.get(f, f),
            "recognised": p[0],
            "eligible": p[1],
            "rate": _ratio(p[0], p[1]),
        }
        for f, p in sorted(by_facility.items())
    ]
    reason_rows = [
        {"code": c, "name": reason_names.get(c, c), "count": n} for c, n in reasons.most_common()
    ]
    charts = {
        "chart-trend": {
            "aria": {"enabled": True},
            "tooltip": {"trigger": "axis"},
            "xAxis": {"type": "category", "data": [x["month"] for x in trend]},
            "yAxis": {
                "type": "value",
                "min": 0,
                "max": 100,
                "axisLabel": {"formatter": "{value}%"},
            },
            "series": [
                {
                    "name": t("recognition.rate"),
                    "type": "line",
                    "data": [
                        None if x["rate"] is None else round(x["rate"] * 100, 1) for x in trend
                    ],
                    "label": {"show": True, "formatter": "{c}%"},
                }
            ],
        },
        "chart-facility": {
            "aria": {"enabled": True},
            "tooltip": {},
            "xAxis": {"type": "category", "data": [f["name"] for f in facilities]},
            "yAxis": {"type": "value", "min": 0, "max": 100},
            "series": [
                {
                    "name": t("recognition.rate"),
                    "type": "bar",
                    "data": [
                        None if f["rate"] is None else round(f["rate"] * 100, 1) for f in facilities
                    ],
                    "label": {"show": True, "position": "top", "formatter": "{c}%"},
                }
            ],
        },
        "chart-items": {
            "aria": {"enabled": True},
            "tooltip": {},
            "grid": {"left": 8, "right": 48, "containLabel": True},
            "xAxis": {"type": "value", "min": 0, "max": 100},
            "yAxis": {
                "type": "category",
                "inverse": True,
                "data": [items.get(code, code) for code in sorted(by_item)],
            },
            "series": [
                {
                    "name": t("recognition.rate"),
                    "type": "bar",
                    "data": [
                        None if (r := _ratio(*by_item[code])) is None else round(r * 100, 1)
                        for code in sorted(by_item)
                    ],
                    "label": {"show": True, "position": "right", "formatter": "{c}%"},
                }
            ],
        },
        "chart-reasons": {
            "aria": {"enabled": True},
            "tooltip": {"trigger": "item"},
            "series": [
                {
                    "name": t("recognition.reasons"),
                    "type": "pie",
                    "radius": "60%",
                    "data": [{"name": r["name"], "value": r["count"]} for r in reason_rows],
                    "label": {"formatter": "×{c}"},
                }
            ],
        },
    }
    qualifications = []
    if catalogue is not None:
        for q in catalogue.qualifications:
            if facility is not None and q.facility != facility:
                continue
            for a in q.eqa:
                if a.result == "pass" and a.valid_until >= today:
                    qualifications.append(
                        {
                            "facility": names.get(q.facility, q.facility),
                            "programme": a.programme,
                            "items": [items.get(i, i) for i in a.items] + a.groups,
                            "scopes": [str(s) for s in q.scopes],
                            "valid_until": a.valid_until,
                        }
                    )
    rows: list[dict[str, Any]] = [
        {
            **r.as_dict(),
            "item_name": items.get(r.item_code, r.item_code),
            "facility_name": names.get(r.facility_id, r.facility_id),
        }
        for r in rates
    ]
    return page(
        request,
        "recognition.html",
        active="recognition",
        catalogue=catalogue,
        month=month,
        trend=trend,
        facilities=facilities,
        reasons=reason_rows,
        rows=rows,
        charts=charts,
        qualifications=qualifications,
    )

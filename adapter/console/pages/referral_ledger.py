"""转诊 Referrals, the medical affairs office's part: the 转诊台账 with its filters and its
exports (XLSX / CSV / printable HTML), and the quarterly analysis as charts with their
numbers beside them. Both read what ``GET /referrals/ledger`` and ``GET
/referrals/analysis`` read (adapter/referral/report.py, adapter/referral/analysis.py) with
the same filters, parsed by the same function (adapter/api/referral_ledger.py
``filters_of``): a facility's client sees the referrals its facility sent or received; a
client of ``scope: consortium`` may choose a facility or see all.

The one figure computed here is the spread of the time to accept (how many referrals were
accepted within 30 minutes, 2 hours, 24 hours, later), from the same ledger rows as the
analysis's median; everything else is the analysis's own numbers.
"""

from __future__ import annotations

import statistics
from datetime import datetime
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.requests import Request as StarletteRequest

from adapter.api.deps import SessionDep
from adapter.api.facility import own_facility
from adapter.api.referral_ledger import _file, filters_of
from adapter.console.i18n import Translator, language_of
from adapter.console.render import SECURITY_HEADERS, page, refused_page
from adapter.errors import ForbiddenError, InvalidRequestError
from adapter.referral import analysis, report
from adapter.referral.report import Filters

router = APIRouter(include_in_schema=False)
PAGE = 100
# the ledger columns the page shows (the exports carry them all)
SHOWN = (
    "slip_number",
    "direction",
    "patient",
    "diagnosis",
    "sender_facility",
    "receiver_facility",
    "status",
    "business_status",
    "created_at",
    "accepted_at",
    "arrived_at",
    "discharged_at",
    "missing",
)
FILTERS = ("from", "to", "week", "direction", "status", "department", "q", "facility")
FLAGS = ("emergency", "green-channel", "backfilled", "incomplete")
# the time to accept: the upper bounds of the spread's bands, in minutes
ACCEPT_BANDS = (
    (30, "accept.30m"),
    (120, "accept.2h"),
    (24 * 60, "accept.24h"),
    (None, "accept.later"),
)


def _asked(request: Request, *, keep: tuple[str, ...] = ()) -> dict[str, str]:
    """The form's filled fields (an empty select or box means "any")."""
    names = (*FILTERS, *FLAGS, *keep)
    return {k: v for k, v in request.query_params.items() if k in names and v.strip()}


def _with_query(request: Request, query: dict[str, str]) -> StarletteRequest:
    """The same request (session, principal, route) with only ``query`` as its query."""
    scope = {**request.scope, "query_string": urlencode(query).encode()}
    return StarletteRequest(scope, request.receive)


def _facilities(request: Request) -> list[tuple[str, str]]:
    """The facilities the form offers: none for a facility's client (its own is implied)."""
    if own_facility(request) is not None:
        return []
    return [(f.id, f.name) for f in request.app.state.consortium.facilities]


def ledger_filters(request: Request, asked: dict[str, str]) -> Filters:
    return filters_of(_with_query(request, asked))


@router.get(
    "/console/referrals/ledger", name="console_referral_ledger", response_class=HTMLResponse
)
def console_referral_ledger(request: Request, session: SessionDep, offset: int = 0) -> HTMLResponse:
    consortium = request.app.state.consortium
    asked = _asked(request)
    error = None
    rows: list[dict[str, Any]] = []
    more = False
    try:
        filters = ledger_filters(request, asked)
        found = list(report.rows(session, filters, limit=PAGE + 1, offset=max(offset, 0)))
        more = len(found) > PAGE
        rows = list(report.as_dicts(consortium, found[:PAGE]))
    except InvalidRequestError as exc:
        error = exc.message
    except ForbiddenError:
        return refused_page(request, "role")
    headers = {key: header for key, header, _ in report.columns(consortium)}
    return page(
        request,
        "referral_ledger.html",
        active="referrals",
        tab="ledger",
        asked=asked,
        query=urlencode(asked),
        rows=rows,
        shown=[(k, headers[k]) for k in SHOWN],
        offset=max(offset, 0),
        more=more,
        page_size=PAGE,
        error=error,
        facilities=_facilities(request),
        directions=report.DIRECTIONS,
        statuses=report.STATUS_TEXT,
        flags=FLAGS,
    )


@router.get("/console/referrals/ledger/export", name="console_referral_ledger_export")
def console_referral_ledger_export(
    request: Request, session: SessionDep, format: str = "xlsx"
) -> Response:
    """The filtered 台账 as a file, written as ``GET /referrals/ledger?format=`` writes it."""
    if format not in ("xlsx", "csv", "html"):
        return page(request, "failed.html", status=400, active="referrals", error=format)
    try:
        filters = ledger_filters(request, _asked(request))
    except InvalidRequestError as exc:
        return page(request, "failed.html", status=400, active="referrals", error=exc.message)
    except ForbiddenError:
        return refused_page(request, "role")
    consortium = request.app.state.consortium
    answer = _file(
        format,
        "referral-ledger",
        lambda path: report.export(consortium, report.rows(session, filters), format, path),
    )
    answer.headers.update(SECURITY_HEADERS)
    return answer


def _this_quarter(request: Request) -> dict[str, str]:
    zone = analysis_zone(request)
    today = datetime.now(zone).date()
    return {"year": str(today.year), "quarter": str((today.month - 1) // 3 + 1)}


def analysis_zone(request: Request) -> ZoneInfo:
    return ZoneInfo(request.app.state.consortium.timezone or "Asia/Shanghai")


def accept_spread(session: Any, filters: Filters) -> dict[str, Any]:
    """The accepted rows of the period by time to accept, with their median (the analysis's
    ``median_minutes_to_accept``: the rows answered or awaiting an answer that were accepted)."""
    waits = [
        (row.accepted_at - row.created_at).total_seconds() / 60
        for row in report.rows(session, filters)
        if row.accepted_at is not None and row.status not in ("draft", "entered-in-error")
    ]
    bands = []
    low = None
    for high, key in ACCEPT_BANDS:
        count = sum(1 for w in waits if (low is None or w > low) and (high is None or w <= high))
        bands.append({"key": key, "count": count})
        low = high
    return {
        "accepted": len(waits),
        "median": round(statistics.median(waits), 1) if waits else None,
        "bands": bands,
    }


def _percent(value: float | None) -> float | None:
    return None if value is None else round(value * 100, 1)


def _pair(pair: dict[str, Any], directions: dict[str, str]) -> str:
    way = directions.get(pair["direction"], pair["direction"])
    return f"{pair['sender_name']} → {pair['receiver_name']} ({way})"


def charts_of(result: dict[str, Any], spread: dict[str, Any], t: Translator) -> dict[str, Any]:
    """The ECharts options: each chart's numbers are the tables' numbers."""
    directions = {
        "up": t("referrals.dir_up"),
        "down": t("referrals.dir_down"),
        "same": t("referrals.dir_same"),
    }
    pairs = result["pairs"][:15]
    months = result["down_ratio_trend"]["by_month"]
    codes: dict[str, dict[str, int]] = {}
    for direction, found in result["diagnoses"].items():
        for item in found["codes"]:
            codes.setdefault(item["key"], {})[direction] = item["count"]
    top = sorted(codes, key=lambda c: -sum(codes[c].values()))[:10]
    rates = [
        (t("analysis.acceptance_rate"), result["acceptance_rate"]),
        (t("analysis.arrival_rate"), result["arrival_rate"]),
        (t("analysis.feedback_rate"), result["feedback_within_deadline_rate"]),
        (t("analysis.follow_up_rate"), result["follow_up_within_5_days_rate"]),
    ]
    base = {"aria": {"enabled": True}, "animation": False}
    return {
        "chart-flows": {
            **base,
            "tooltip": {"trigger": "axis"},
            "grid": {"left": 8, "right": 32, "containLabel": True},
            "xAxis": {"type": "value", "minInterval": 1},
            "yAxis": {
                "type": "category",
                "inverse": True,
                "data": [_pair(p, directions) for p in pairs],
            },
            "series": [
                {
                    "name": t("analysis.count"),
                    "type": "bar",
                    "data": [p["count"] for p in pairs],
                    "label": {"show": True, "position": "right"},
                }
            ],
        },
        "chart-down-ratio": {
            **base,
            "tooltip": {"trigger": "axis"},
            "legend": {},
            "xAxis": {"type": "category", "data": [m["month"] for m in months]},
            "yAxis": [{"type": "value", "minInterval": 1}, {"type": "value", "min": 0}],
            "series": [
                {"name": directions["up"], "type": "bar", "data": [m["up"] for m in months]},
                {"name": directions["down"], "type": "bar", "data": [m["down"] for m in months]},
                {
                    "name": t("analysis.down_ratio"),
                    "type": "line",
                    "yAxisIndex": 1,
                    "data": [m["down_ratio"] for m in months],
                    "label": {"show": True},
                },
            ],
        },
        "chart-diagnoses": {
            **base,
            "tooltip": {"trigger": "axis"},
            "legend": {},
            "grid": {"left": 8, "right": 32, "containLabel": True},
            "xAxis": {"type": "value", "minInterval": 1},
            "yAxis": {"type": "category", "inverse": True, "data": top},
            "series": [
                {
                    "name": directions.get(d, d),
                    "type": "bar",
                    "stack": "all",
                    "data": [codes[c].get(d, 0) for c in top],
                    "label": {"show": True},
                }
                for d in sorted(result["diagnoses"])
            ],
        },
        "chart-accept": {
            **base,
            "tooltip": {},
            "xAxis": {
                "type": "category",
                "data": [t("analysis." + b["key"]) for b in spread["bands"]],
                "axisLabel": {"interval": 0},
            },
            "yAxis": {"type": "value", "minInterval": 1},
            "series": [
                {
                    "name": t("analysis.count"),
                    "type": "bar",
                    "data": [b["count"] for b in spread["bands"]],
                    "label": {"show": True, "position": "top"},
                }
            ],
        },
        "chart-loop": {
            **base,
            "tooltip": {},
            "xAxis": {
                "type": "category",
                "data": [name for name, _ in rates],
                "axisLabel": {"interval": 0, "width": 90, "overflow": "break"},
            },
            "yAxis": {
                "type": "value",
                "min": 0,
                "max": 100,
                "axisLabel": {"formatter": "{value}%"},
            },
            "series": [
                {
                    "name": t("analysis.rate"),
                    "type": "bar",
                    "data": [_percent(v) for _, v in rates],
                    "label": {"show": True, "position": "top", "formatter": "{c}%"},
                }
            ],
        },
    }


@router.get(
    "/console/referrals/analysis", name="console_referral_analysis", response_class=HTMLResponse
)
def console_referral_analysis(request: Request, session: SessionDep) -> HTMLResponse:
    asked = _asked(request, keep=("year", "quarter"))
    asked = {k: v for k, v in asked.items() if k in ("year", "quarter", "from", "to", "facility")}
    if not ({"year", "quarter"} & asked.keys() or {"from", "to"} <= asked.keys()):
        asked = {**_this_quarter(request), **{k: v for k, v in asked.items() if k == "facility"}}
    consortium = request.app.state.consortium
    t = Translator(language_of(request))
    try:
        filters = ledger_filters(request, asked)
        if filters.start is None or filters.end is None:
            raise InvalidRequestError("give from and to (YYYY-MM-DD), or year and quarter")
    except InvalidRequestError as exc:
        return page(
            request,
            "referral_analysis.html",
            status=400,
            active="referrals",
            tab="analysis",
            asked=asked,
            error=exc.message,
            facilities=_facilities(request),
            result=None,
        )
    except ForbiddenError:
        return refused_page(request, "role")
    result = analysis.analyse(
        session, consortium, filters.start, filters.end, facility=filters.facility
    )
    spread = accept_spread(
        session, Filters(facility=filters.facility, start=filters.start, end=filters.end)
    )
    rates = [
        ("acceptance_rate", result["acceptance_rate"]),
        ("arrival_rate", result["arrival_rate"]),
        ("feedback_rate", result["feedback_within_deadline_rate"]),
        ("follow_up_rate", result["follow_up_within_5_days_rate"]),
    ]
    return page(
        request,
        "referral_analysis.html",
        active="referrals",
        tab="analysis",
        asked=asked,
        error=None,
        facilities=_facilities(request),
        result=result,
        spread=spread,
        rates=rates,
        charts=charts_of(result, spread, t),
    )

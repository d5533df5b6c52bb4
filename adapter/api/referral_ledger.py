"""The 转诊台账, the quarterly analysis and the overdue worklist over HTTP (docs/api.md,
docs/ledger.md), JSON for the console's charts, CSV / XLSX / HTML for the medical affairs
office (医务科):

    GET /referrals/ledger     filters: facility, department, direction, status, from, to
                              (YYYY-MM-DD, local days, ``to`` included), week (a Friday:
                              the week ending that day), q (keyword), flags emergency,
                              green-channel, backfilled, incomplete; format json | csv |
                              xlsx | html; json pages with _count (<= 1000) and _offset
    GET /referrals/incomplete incomplete and late slips, with what is missing
    GET /referrals/analysis   facility, from, to (or year + quarter); format json | csv | xlsx
    GET /referrals/worklist   the overdue worklist: facility, department, all=true for the
                              resolved rows too

A client limited to its facility (docs/security.md) sees the referrals where its facility
is the sender or the receiver; naming another facility is refused (403).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import replace
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse
from sqlalchemy import or_, select
from starlette.background import BackgroundTask

from adapter.api.deps import SessionDep
from adapter.api.facility import check_named, own_facility
from adapter.consortium import Consortium
from adapter.errors import InvalidRequestError
from adapter.export import write_csv, write_xlsx
from adapter.referral import analysis, report
from adapter.referral.deadlines import label
from adapter.store.models import ReferralOverdue

router = APIRouter(tags=["referrals"])
MEDIA = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "html": "text/html; charset=utf-8",
}
MAX_PAGE = 1000


def _zone(consortium: Consortium) -> ZoneInfo:
    return ZoneInfo(consortium.timezone or "Asia/Shanghai")


def _day(value: str | None, name: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidRequestError(f"{name} must be a date YYYY-MM-DD", location=name) from None


def _facility(request: Request) -> str | None:
    """The facility asked about; the caller's own when it is limited to one."""
    consortium: Consortium = request.app.state.consortium
    named = request.query_params.get("facility") or None
    if named is not None:
        if consortium.facility(named) is None:
            raise InvalidRequestError(
                "facility must name a member facility of the consortium", location="facility"
            )
        check_named(request, named)
    return named or own_facility(request)


def _flag(value: str | None, name: str) -> bool | None:
    if value is None:
        return None
    if value not in ("true", "false"):
        raise InvalidRequestError(f"{name} is true or false", location=name)
    return value == "true"


def period(request: Request) -> tuple[datetime | None, datetime | None]:
    """[start, end) from ``week`` (a Friday), ``year`` + ``quarter``, or ``from`` / ``to``."""
    query = request.query_params
    zone = _zone(request.app.state.consortium)
    week = _day(query.get("week"), "week")
    try:
        if week is not None:
            return report.week_ending(week, zone)
        if query.get("year") or query.get("quarter"):
            year, number = int(query.get("year", "")), int(query.get("quarter", ""))
            return analysis.quarter(year, number, zone)
    except ValueError as exc:
        where = "week" if week is not None else "quarter"
        raise InvalidRequestError(str(exc), location=where) from None
    start, end = _day(query.get("from"), "from"), _day(query.get("to"), "to")
    return (
        datetime.combine(start, time(), zone) if start else None,
        datetime.combine(end + timedelta(days=1), time(), zone) if end else None,
    )


def filters_of(request: Request) -> report.Filters:
    query = request.query_params
    direction = query.get("direction")
    if direction is not None and direction not in report.DIRECTIONS:
        raise InvalidRequestError("direction is up, down or same", location="direction")
    start, end = period(request)
    return report.Filters(
        facility=_facility(request),
        department=query.get("department") or None,
        direction=direction,
        status=query.get("status") or None,
        start=start,
        end=end,
        keyword=(query.get("q") or None),
        emergency=_flag(query.get("emergency"), "emergency"),
        green_channel=_flag(query.get("green-channel"), "green-channel"),
        backfilled=_flag(query.get("backfilled"), "backfilled"),
        incomplete=_flag(query.get("incomplete"), "incomplete"),
    )


def _format(request: Request, allowed: tuple[str, ...]) -> str:
    fmt = request.query_params.get("format", "json")
    if fmt not in allowed:
        raise InvalidRequestError(f"format is one of {', '.join(allowed)}", location="format")
    return fmt


def _file(fmt: str, name: str, write: Any) -> FileResponse:
    handle, path = tempfile.mkstemp(suffix=f".{fmt}")
    os.close(handle)
    try:
        write(Path(path))
    except BaseException:
        os.unlink(path)
        raise
    return FileResponse(
        path,
        media_type=MEDIA[fmt],
        filename=f"{name}.{fmt}",
        background=BackgroundTask(os.unlink, path),
    )


def _page(request: Request) -> tuple[int, int]:
    try:
        count = int(request.query_params.get("_count", "100"))
        offset = int(request.query_params.get("_offset", "0"))
    except ValueError:
        raise InvalidRequestError("_count and _offset are numbers", location="_count") from None
    if not 0 < count <= MAX_PAGE or offset < 0:
        raise InvalidRequestError(f"_count is 1 to {MAX_PAGE}", location="_count")
    return count, offset


@router.get("/referrals/ledger", name="referral_ledger", summary="The 转诊台账, filtered")
def ledger(request: Request, session: SessionDep) -> Any:
    consortium: Consortium = request.app.state.consortium
    filters = filters_of(request)
    fmt = _format(request, ("json", "csv", "xlsx", "html"))
    if fmt != "json":
        return _file(
            fmt,
            "referral-ledger",
            lambda path: report.export(consortium, report.rows(session, filters), fmt, path),
        )
    count, offset = _page(request)
    found = list(report.rows(session, filters, limit=count + 1, offset=offset))
    return JSONResponse(
        {
            "columns": [{"key": k, "header": h} for k, h, _ in report.columns(consortium)],
            "rows": list(report.as_dicts(consortium, found[:count])),
            "offset": offset,
            "more": len(found) > count,
        }
    )


@router.get(
    "/referrals/incomplete",
    name="referral_incomplete",
    summary="Incomplete and late referral slips, with what is missing",
)
def incomplete(request: Request, session: SessionDep) -> JSONResponse:
    consortium: Consortium = request.app.state.consortium
    filters = replace(filters_of(request), incomplete_or_late=True)
    count, offset = _page(request)
    found = list(report.rows(session, filters, limit=count, offset=offset))
    return JSONResponse(
        {
            "rows": [
                {
                    "task": f"Task/{r.task_id}",
                    "slip_number": r.slip_number,
                    "direction": r.direction,
                    "sender_facility": r.sender_facility,
                    "sender_department": r.sender_department,
                    "receiver_facility": r.receiver_facility,
                    "created_at": r.created_at.isoformat(),
                    "missing": list(r.missing or []),
                    "late": r.backfilled,
                }
                for r in found
            ],
            "offset": offset,
            "facility_names": {f.id: f.name for f in consortium.facilities},
        }
    )


@router.get(
    "/referrals/analysis", name="referral_analysis", summary="The quarterly referral analysis"
)
def analyse(request: Request, session: SessionDep) -> Any:
    consortium: Consortium = request.app.state.consortium
    start, end = period(request)
    if start is None or end is None:
        raise InvalidRequestError(
            "give from and to (YYYY-MM-DD), or year and quarter", location="from"
        )
    fmt = _format(request, ("json", "csv", "xlsx"))
    result = analysis.analyse(session, consortium, start, end, facility=_facility(request))
    if fmt == "json":
        return JSONResponse(result)
    writer = write_csv if fmt == "csv" else write_xlsx
    return _file(
        fmt,
        "referral-analysis",
        lambda path: writer(path, analysis.headers(), analysis.flat(result)),
    )


@router.get("/referrals/worklist", name="referral_worklist", summary="The overdue worklist")
def worklist(request: Request, session: SessionDep) -> JSONResponse:
    facility = _facility(request)
    department = request.query_params.get("department") or None
    q = select(ReferralOverdue).order_by(ReferralOverdue.due_at, ReferralOverdue.id)
    if facility:
        q = q.where(
            or_(ReferralOverdue.facility_id == facility, ReferralOverdue.other_facility == facility)
        )
    if department:
        q = q.where(ReferralOverdue.department == department)
    if _flag(request.query_params.get("all"), "all") is not True:
        q = q.where(ReferralOverdue.resolved_at.is_(None))
    count, offset = _page(request)
    items = session.scalars(q.limit(count).offset(offset)).all()
    return JSONResponse(
        {
            "rows": [
                {
                    "task": f"Task/{o.task_id}",
                    "deadline": o.kind,
                    "label": label(o.kind),
                    "due_at": o.due_at.isoformat(),
                    "noticed_at": o.noticed_at.isoformat(),
                    "facility": o.facility_id,
                    "department": o.department,
                    "other_facility": o.other_facility,
                    "notice": o.notice,
                    "resolved_at": o.resolved_at.isoformat() if o.resolved_at else None,
                }
                for o in items
            ],
            "offset": offset,
        }
    )

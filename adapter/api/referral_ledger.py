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
    POST /referrals/{task}/follow-up
                              a follow-up (随访) of the referred patient, by the facility that
                              follows up: body {"record": "Encounter/<id>"} or empty

A client limited to its facility (docs/security.md) sees the referrals where its facility
is the sender or the receiver; naming another facility is refused (403).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse
from sqlalchemy import or_, select
from starlette.background import BackgroundTask

from adapter.api.deps import SessionDep, SessionFactoryDep
from adapter.api.facility import check_named, own_facility
from adapter.api.fhir_request import check_id
from adapter.api.referrals import FACILITY_HEADER, asking_facility
from adapter.consortium import Consortium
from adapter.errors import InvalidRequestError, MessageError
from adapter.export import write_csv, write_xlsx
from adapter.referral import analysis, report
from adapter.referral.apply import RefusedError
from adapter.referral.deadlines import label
from adapter.referral.follow_up import audit_follow_up, record_follow_up
from adapter.store.models import ReferralOverdue

router = APIRouter(tags=["referrals"])
MEDIA = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "html": "text/html; charset=utf-8",
}
MAX_PAGE = 1000


def _q(name: str, description: str, enum: tuple[str, ...] | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    if enum:
        schema["enum"] = list(enum)
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


# the query parameters each route reads from request.query_params, for the OpenAPI
# document (FastAPI cannot see them: they are read by hand to answer 400, not 422)
_FACILITY = _q("facility", "a member facility id: the referrals it sent or received")
_PERIOD = [
    _q("from", "first day (local, YYYY-MM-DD), included"),
    _q("to", "last day (local, YYYY-MM-DD), included"),
]
_PAGE = [
    _q("_count", "page size, 1 to 1000 (default 100)"),
    _q("_offset", "where the page starts (default 0)"),
]
_FLAGS = ("true", "false")
LEDGER_PARAMS = [
    _FACILITY,
    _q("department", "the sending or receiving department"),
    _q("direction", "the referral's type: up 上转, down 下转, same 平转", tuple(report.DIRECTIONS)),
    _q("status", "a Task.status or a businessStatus code (referral-business-status)"),
    *_PERIOD,
    _q("week", "a Friday (YYYY-MM-DD): the reporting week ending that day, instead of from/to"),
    _q("q", "a keyword in the slip number, diagnosis, reason, doctors, masked patient"),
    _q("emergency", "急诊 only (true) or none (false)", _FLAGS),
    _q("green-channel", "绿色通道 only (true) or none (false)", _FLAGS),
    _q("backfilled", "补录 (written after the transfer) only, or none", _FLAGS),
    _q("incomplete", "slips with something missing (缺项) only, or none", _FLAGS),
    _q("format", "json (paged), or the whole ledger as a file", ("json", "csv", "xlsx", "html")),
    *_PAGE,
]
INCOMPLETE_PARAMS = [
    p for p in LEDGER_PARAMS if p["name"] not in ("incomplete", "backfilled", "format")
]
ANALYSIS_PARAMS = [
    _FACILITY,
    _q("year", "with quarter: the quarter's period"),
    _q("quarter", "1 to 4, with year", ("1", "2", "3", "4")),
    *_PERIOD,
    _q("week", "a Friday: the week ending that day"),
    _q("format", "json, or rows 指标 / 分组 / 数值 as a file", ("json", "csv", "xlsx")),
]
WORKLIST_PARAMS = [
    _q("facility", "the facility that must act, or the other party told"),
    _q("department", "the department that must act"),
    _q("all", "true: the resolved rows too", _FLAGS),
    *_PAGE,
]


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


@router.get(
    "/referrals/ledger",
    name="referral_ledger",
    summary="The 转诊台账, filtered",
    openapi_extra={"parameters": LEDGER_PARAMS},
)
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
    openapi_extra={"parameters": INCOMPLETE_PARAMS},
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
    "/referrals/analysis",
    name="referral_analysis",
    summary="The quarterly referral analysis",
    openapi_extra={"parameters": ANALYSIS_PARAMS},
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


@router.get(
    "/referrals/worklist",
    name="referral_worklist",
    summary="The overdue worklist",
    openapi_extra={"parameters": WORKLIST_PARAMS},
)
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


MAX_FOLLOW_UP_BODY = 4096


@router.post(
    "/referrals/{task_id}/follow-up",
    name="referral_follow_up",
    summary="Record a follow-up (随访) of a referred patient",
    openapi_extra={
        "parameters": [
            {
                "name": FACILITY_HEADER,
                "in": "header",
                "required": False,
                "description": "the facility recording (with authentication off only; else "
                "the token's facility)",
                "schema": {"type": "string"},
            }
        ],
        "requestBody": {
            "required": False,
            "description": 'optional: {"record": "Encounter/<id>"}, the follow-up\'s record',
            "content": {"application/json": {"schema": {"type": "object"}}},
        },
    },
)
async def follow_up(task_id: str, request: Request, factory: SessionFactoryDep) -> JSONResponse:
    """The sender follows up an up- or same-level referred patient, the primary facility a
    down-referred one: counted on the ledger row, its follow-up deadline met. Refused
    (naming the rule) for the other party (409) or a facility that is neither (403)."""
    check_id(task_id)
    facility = asking_facility(request)
    body = await request.body()
    if len(body) > MAX_FOLLOW_UP_BODY:
        raise InvalidRequestError(f"body over {MAX_FOLLOW_UP_BODY} bytes", location="body")
    record = None
    if body.strip():
        try:
            given = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise MessageError(f"body is not JSON: {exc}", location="body") from None
        if not isinstance(given, dict) or not isinstance(given.get("record", ""), str | None):
            raise InvalidRequestError('the body is {"record": "Type/id"}', location="body")
        record = given.get("record") or None
    consortium: Consortium = request.app.state.consortium
    now = datetime.now(UTC)
    try:
        with factory.begin() as session:
            row = record_follow_up(session, consortium, task_id, facility, at=now, record=record)
            answer = {
                "task": f"Task/{row.task_id}",
                "follow_ups": row.follow_ups,
                "followed_up_at": row.followed_up_at.isoformat() if row.followed_up_at else None,
                "follow_up_record": row.follow_up_record,
                "next_deadline": row.next_due_kind,
            }
    except RefusedError as refused:
        with factory.begin() as session:  # the refused transaction was rolled back
            audit_follow_up(session, task_id, facility, at=now, refused=refused.rule)
        raise
    return JSONResponse(answer)

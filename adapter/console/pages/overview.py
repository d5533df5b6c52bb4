"""总览 Overview: today's messages by source and status, the quarantine, deliveries per
destination with their breaker, the overdue referrals (the worklist of the deadline
scheduler, adapter/referral/scheduler.py), the review queue and the last nightly sync. The
page refreshes its figures from ``/console/overview.json`` without reloading."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from adapter.api.deps import SessionDep
from adapter.api.facility import destinations_of, own_facility
from adapter.console.access import current_session
from adapter.console.render import SECURITY_HEADERS, page
from adapter.pipeline import QUARANTINED, STATUSES
from adapter.store import outbox
from adapter.store.identity_tables import IdentityReview
from adapter.store.models import InboundMessage, ReferralOverdue, SyncRun

router = APIRouter(include_in_schema=False)


def start_of_today(request: Request, now: datetime | None = None) -> datetime:
    """Midnight in the consortium's zone (Asia/Shanghai by default), as UTC."""
    zone = ZoneInfo(request.app.state.consortium.timezone or "Asia/Shanghai")
    local = (now or datetime.now(UTC)).astimezone(zone)
    return datetime.combine(local.date(), time(0), zone).astimezone(UTC)


def message_figures(session: Session, since: datetime, facility: str | None) -> dict[str, Any]:
    m = InboundMessage
    query = select(m.source_system, m.status, func.count()).where(m.received_at >= since)
    quarantine = select(func.count()).select_from(m).where(m.status == QUARANTINED)
    if facility is not None:
        query = query.where(m.facility_id == facility)
        quarantine = quarantine.where(m.facility_id == facility)
    by_source: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(STATUSES, 0))
    for source, status, count in session.execute(query.group_by(m.source_system, m.status)):
        by_source[source][status] = int(count)
    return {
        "today": [{"source": s, **by_source[s]} for s in sorted(by_source)],
        "quarantined": int(session.scalar(quarantine) or 0),
    }


def destination_figures(request: Request, session: Session) -> list[dict[str, Any]]:
    among = destinations_of(request)
    names = [d.id for _, d in request.app.state.consortium.destinations()]
    if among is not None:
        names = [n for n in names if n in among]
    counts: dict[str, dict[str, int]] = defaultdict(dict)
    for figure in outbox.queue_figures(session):
        counts[figure.destination][str(figure.state)] = figure.count
    records = {r.destination: r for r in outbox.destination_records(session)}
    out = []
    for name in names:
        record = records.get(name)
        out.append(
            {
                "destination": name,
                "pending": counts[name].get("pending", 0),
                "in_flight": counts[name].get("in-flight", 0),
                "dead": counts[name].get("dead", 0),
                "breaker": record.breaker_state if record else "closed",
                "paused": bool(record and record.paused_at),
                "last_success_at": _instant(record.last_success_at if record else None),
            }
        )
    return out


def overdue_referrals(session: Session, facility: str | None) -> int:
    """Open items of the overdue worklist (as ``GET /referrals/worklist``: the facility as
    the party that must act or the other party)."""
    o = ReferralOverdue
    query = select(func.count()).select_from(o).where(o.resolved_at.is_(None))
    if facility is not None:
        query = query.where(or_(o.facility_id == facility, o.other_facility == facility))
    return int(session.scalar(query) or 0)


def _instant(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat(timespec="seconds") if value else None


def figures(request: Request, session: Session) -> dict[str, Any]:
    console = current_session(request)
    facility = own_facility(request)
    data: dict[str, Any] = {
        "at": _instant(datetime.now(UTC)),
        "messages": message_figures(session, start_of_today(request), facility),
        "destinations": destination_figures(request, session),
        "overdue": overdue_referrals(session, facility),
        "reviews": None,  # the patient index spans the consortium: consortium scope only
        "sync": None,
    }
    if console.consortium_scope:
        data["reviews"] = int(
            session.scalar(
                select(func.count())
                .select_from(IdentityReview)
                .where(IdentityReview.state.in_(("open", "claimed")))
            )
            or 0
        )
    run = session.scalars(select(SyncRun).order_by(SyncRun.started_at.desc()).limit(1)).first()
    if run is not None:
        data["sync"] = {
            "day": run.day,
            "state": run.state,
            "exit_code": run.exit_code,
            "finished_at": _instant(run.finished_at),
        }
    return data


@router.get("/console/overview", name="console_overview", response_class=HTMLResponse)
def console_overview(request: Request, session: SessionDep) -> HTMLResponse:
    return page(request, "overview.html", active="overview", data=figures(request, session))


@router.get("/console/overview.json", name="console_overview_data")
def console_overview_data(request: Request, session: SessionDep) -> JSONResponse:
    return JSONResponse(figures(request, session), headers=SECURITY_HEADERS)

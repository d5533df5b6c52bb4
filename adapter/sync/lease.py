"""The lease row that lets one process among several run the scheduled sync of a day.

Taking it is one UPDATE guarded by its own condition (free, expired, or ours) and not yet
run for that day: the database decides, so two processes cannot both win. Once a day's
run has finished, ``last_run_day`` keeps the others from running it again.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import or_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from adapter.store.models import SyncLease


def take(session: Session, name: str, holder: str, day: str, seconds: float, now: datetime) -> bool:
    if session.get(SyncLease, name) is None:
        try:
            with session.begin_nested():
                session.add(SyncLease(name=name, holder=None, until=None, last_run_day=None))
        except IntegrityError:
            pass  # another process created it meanwhile
    result = session.execute(
        update(SyncLease)
        .where(
            SyncLease.name == name,
            or_(SyncLease.until.is_(None), SyncLease.until < now, SyncLease.holder == holder),
            or_(SyncLease.last_run_day.is_(None), SyncLease.last_run_day < day),
        )
        .values(holder=holder, until=now + timedelta(seconds=seconds))
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def release(session: Session, name: str, holder: str, finished_day: str | None) -> None:
    values: dict[str, object] = {"holder": None, "until": None}
    if finished_day is not None:
        values["last_run_day"] = finished_day
    session.execute(
        update(SyncLease).where(SyncLease.name == name, SyncLease.holder == holder).values(**values)
    )

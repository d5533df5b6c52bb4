"""The sync tables: runs (window, checkpoints, report), the item ledger, bookmarks.
Every function takes a Session and never commits."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from adapter.store.models import SyncBookmark, SyncItem, SyncRun


def open_run(session: Session, day: str, sources: list[str], replay: bool) -> SyncRun | None:
    """The unfinished run of the same day and sources, to be resumed (None: none)."""
    rows = session.scalars(
        select(SyncRun)
        .where(SyncRun.state == "running", SyncRun.day == day, SyncRun.replay == replay)
        .order_by(SyncRun.started_at.desc())
    )
    return next((r for r in rows if sorted(r.sources) == sorted(sources)), None)


def new_run(
    session: Session,
    day: str,
    sources: list[str],
    replay: bool,
    windows: dict[str, Any],
    now: datetime,
) -> SyncRun:
    run = SyncRun(
        id=str(uuid.uuid4()),
        day=day,
        sources=sources,
        state="running",
        replay=replay,
        started_at=now,
        windows=windows,
        checkpoints={},
        attempts=1,
    )
    session.add(run)
    return run


def save_checkpoint(session: Session, run_id: str, source: str, value: dict[str, Any]) -> None:
    run = session.get(SyncRun, run_id, with_for_update=True)
    assert run is not None
    checkpoints = dict(run.checkpoints or {})
    checkpoints[source] = value
    run.checkpoints = checkpoints


def bookmark(session: Session, source: str) -> str | None:
    row = session.get(SyncBookmark, source)
    return None if row is None else row.watermark


def set_bookmark(session: Session, source: str, watermark: str, run_id: str, now: datetime) -> None:
    row = session.get(SyncBookmark, source)
    if row is None:
        session.add(
            SyncBookmark(sync_source=source, watermark=watermark, run_id=run_id, updated_at=now)
        )
    elif watermark > row.watermark or row.run_id != run_id:
        row.watermark = max(watermark, row.watermark)
        row.run_id, row.updated_at = run_id, now


def items_to_record(session: Session, source: str, keys: list[str]) -> dict[str, SyncItem]:
    """The ledger rows of ``keys`` already there, read and locked in one statement per 500
    keys, for ``record_item(known=...)``: a batch of documents pays one read, not one per
    document (issue 14's PostgreSQL night: round trips)."""
    found: dict[str, SyncItem] = {}
    wanted = list(dict.fromkeys(keys))
    for start in range(0, len(wanted), 500):
        rows = session.scalars(
            select(SyncItem)
            .where(
                SyncItem.sync_source == source, SyncItem.item_key.in_(wanted[start : start + 500])
            )
            .with_for_update()
        )
        found.update((r.item_key, r) for r in rows)
    return found


def record_item(
    session: Session,
    *,
    source: str,
    facility: str,
    kind: str,
    key: str,
    day: str,
    op: str,
    sha256: str | None,
    message_id: str | None,
    status: str | None,
    run_id: str,
    replayed: bool,
    now: datetime,
    known: dict[str, SyncItem] | None = None,
) -> str:
    """Write what became of one key; returns its op as reported (new, corrected, deleted).
    The same bytes again change nothing (a resumed run, the overlap window). ``known``:
    the source's rows read by ``items_to_record`` (kept up to date here: the same key twice
    finds its first row without a flush); without it the row is read and locked here."""
    if known is not None:
        row = known.get(key)
    else:
        row = session.get(SyncItem, (source, key), with_for_update=True)
    if row is None:
        row = SyncItem(
            sync_source=source,
            item_key=key,
            facility_id=facility,
            document_kind=kind,
            day=day,
            op=op,
            sha256=sha256,
            message_id=message_id,
            status=status,
            versions=1,
            replayed=replayed,
            run_id=run_id,
            updated_at=now,
        )
        session.add(row)
        if known is not None:
            known[key] = row
        return op
    if op == "deleted":
        row.op = "deleted"
    elif sha256 is not None and row.sha256 != sha256:
        row.op = "corrected"
        row.versions += 1
    if sha256 is not None:
        row.sha256 = sha256
    if message_id is not None:
        row.message_id, row.status = message_id, status
    row.replayed = row.replayed or replayed
    row.run_id, row.updated_at = run_id, now
    return row.op


def items_of_day(session: Session, source: str, day: str) -> list[SyncItem]:
    return list(
        session.scalars(select(SyncItem).where(SyncItem.sync_source == source, SyncItem.day == day))
    )


def finish_run(
    session: Session, run_id: str, *, report: dict[str, Any], exit_code: int, now: datetime
) -> None:
    session.execute(
        update(SyncRun)
        .where(SyncRun.id == run_id)
        .values(state="done", finished_at=now, report=report, exit_code=exit_code)
    )


def note_report(session: Session, run_id: str, *, report: dict[str, Any], exit_code: int) -> None:
    """The report of a run that stays unfinished (a ``--jobs`` child died): shown by
    ``sync history``, replaced when a later start finishes the run."""
    session.execute(
        update(SyncRun).where(SyncRun.id == run_id).values(report=report, exit_code=exit_code)
    )


def history(session: Session, limit: int = 20, source: str | None = None) -> list[SyncRun]:
    rows = session.scalars(select(SyncRun).order_by(SyncRun.started_at.desc()).limit(limit * 4))
    found = [r for r in rows if source is None or source in (r.sources or [])]
    return found[:limit]


def past_counts(session: Session, source: str, before_day: str, limit: int) -> list[int]:
    """The source's count on earlier days, from finished reports (newest first, one per day)."""
    rows = session.scalars(
        select(SyncRun)
        .where(SyncRun.state == "done", SyncRun.day < before_day, SyncRun.replay.is_(False))
        .order_by(SyncRun.day.desc(), SyncRun.started_at.desc())
        .limit(limit * 8)
    )
    counts: dict[str, int] = {}
    for run in rows:
        for part in (run.report or {}).get("sources", []):
            if part.get("sync_source") == source and run.day not in counts:
                figure = part.get("source", {}).get("count")
                if figure is None:
                    figure = part.get("received", {}).get("total")
                if figure is not None:
                    counts[run.day] = int(figure)
    return list(counts.values())[:limit]

"""``adapter recognition mark``: judge the stored results again against the catalogue and
store those whose mark changes (docs/recognition.md, "Marking stored results").

Results stored before a catalogue was configured carry no mark; a new catalogue edition
may add or drop items, facilities or assessments. The pipeline marks each version as it is
stored (adapter/recognition/marks.py); this walks the stored Observations and
DiagnosticReports in batches and gives each the mark the pipeline would give it now:
judged **as issued** (final, the specimen and method the item names, the issuing facility
qualified for the item's scope, an assessment passed and in force on the result's day).
A result whose mark changes (gained, lost, or another mark) is stored as a new version
through the store and queued for the destinations that receive it, as any change is
(static routes and routing by care); one audit record per batch
(``recognition.marked``). A result stored without its issuing facility is left as it is:
the pipeline never marks one either. A second run changes nothing.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from adapter import audit
from adapter.consortium import Consortium
from adapter.recognition.catalogue import Catalogue
from adapter.recognition.marks import ResultMarks
from adapter.recognition.parameters import MARK_SYSTEM
from adapter.recognition.query import RESULT_TYPES
from adapter.store import Saved, enqueue_many, lock_resources, save_resources
from adapter.store.facilities import name_of
from adapter.store.models import Resource
from adapter.store.resources import LockedRows
from adapter.version_routing import outbox_rows_for_versions

_r = Resource.__table__


@dataclass(slots=True)
class MarkRun:
    examined: int = 0  # stored results read
    marked: int = 0  # gained the mark (or changed it)
    unmarked: int = 0  # lost it
    queued: int = 0  # outbox rows made for the new versions
    dry_run: bool = False

    @property
    def changed(self) -> int:
        return self.marked + self.unmarked


Progress = Callable[[str, MarkRun], None]


def marks_of(body: dict[str, Any]) -> list[str]:
    """The adapter's marks in a body's meta.tag (sorted)."""
    tags = (body.get("meta") or {}).get("tag") or []
    return sorted(
        str(t.get("code")) for t in tags if isinstance(t, dict) and t.get("system") == MARK_SYSTEM
    )


def mark_stored(
    factory: sessionmaker[Session],
    catalogue: Catalogue,
    consortium: Consortium,
    *,
    now: datetime,
    since: datetime | None = None,
    dry_run: bool = False,
    batch: int = 500,
    actor: str = "cli",
    progress: Progress | None = None,
) -> MarkRun:
    """Give every stored result (last stored since ``since``) the mark the catalogue gives
    it now; ``dry_run``: count only. One transaction per batch of ``batch`` results."""
    marks = ResultMarks(catalogue, consortium)
    run = MarkRun(dry_run=dry_run)
    for rtype in RESULT_TYPES:
        after = ""
        while True:
            with factory.begin() as session:
                query = (
                    select(_r.c.id, name_of(_r.c.facility_key), _r.c.body)
                    .where(_r.c.resource_type == rtype, _r.c.deleted.is_(False), _r.c.id > after)
                    .order_by(_r.c.id)
                    .limit(batch)
                )
                if since is not None:
                    query = query.where(_r.c.last_updated >= since)
                rows = list(session.execute(query))
                if not rows:
                    break
                after = rows[-1].id
                run.examined += len(rows)
                changing = _judged(session, marks, rows)
                if changing and not dry_run:
                    _store(session, marks, consortium, rtype, changing, now, actor, run)
                elif changing:
                    for body, new in changing.values():
                        _count(run, marks_of(body), marks_of(new))
            if progress is not None:
                progress(rtype, run)
    return run


def _judged(
    session: Session, marks: ResultMarks, rows: list[Any]
) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """id -> (stored body, body with the mark decided now) for the rows whose mark changes."""
    by_facility: dict[str, list[Any]] = {}
    for row in rows:
        if row.facility_id is not None:
            by_facility.setdefault(row.facility_id, []).append(row)
    changing: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
    for facility, group in by_facility.items():
        bodies = [copy.deepcopy(row.body) for row in group]
        marks.mark(session, bodies, facility)
        for row, new in zip(group, bodies, strict=True):
            if marks_of(row.body) != marks_of(new):
                changing[row.id] = (row.body, new)
    return changing


def _store(
    session: Session,
    marks: ResultMarks,
    consortium: Consortium,
    rtype: str,
    changing: dict[str, tuple[dict[str, Any], dict[str, Any]]],
    now: datetime,
    actor: str,
    run: MarkRun,
) -> None:
    """Lock the results, judge them again as they are now (an ingest may have stored a new
    version since the batch was read), store the changed ones and queue them."""
    keys = [(rtype, rid) for rid in sorted(changing)]
    locked = lock_resources(session, keys, now=now)
    current = session.execute(
        select(_r.c.id, name_of(_r.c.facility_key), _r.c.body).where(
            _r.c.resource_type == rtype,
            _r.c.id.in_([rid for _, rid in keys]),
            _r.c.deleted.is_(False),
        )
    ).all()
    again = _judged(session, marks, current)
    by_facility: dict[str, list[dict[str, Any]]] = {}
    facility_of = {row.id: row.facility_id for row in current}
    for rid, (old, new) in again.items():
        _count(run, marks_of(old), marks_of(new))
        by_facility.setdefault(facility_of[rid], []).append(new)
    made: list[Saved] = []
    outbox: list[dict[str, Any]] = []
    for facility, bodies in sorted(by_facility.items()):
        wanted = {(rtype, b["id"]) for b in bodies}
        saved = save_resources(
            session,
            bodies,
            message_id=None,
            now=now,
            facility_id=facility,
            locked=_only(locked, wanted),
        )
        changed = [s for s in saved if s.changed]
        made += changed
        outbox += outbox_rows_for_versions(session, consortium, changed, facility, now)
    enqueue_many(session, outbox, now=now)
    run.queued += len(outbox)
    if made:
        audit.record(
            audit.AuditEvent(
                action="recognition.marked",
                outcome="success",
                actor=actor,
                subject=None,
                correlation_id=None,
                at=now,
                detail={"resource_type": rtype, "count": len(made), "queued": len(outbox)},
                entities=tuple(f"{s.resource_type}/{s.id}/_history/{s.version_id}" for s in made),
                patients=tuple(sorted({s.patient_key for s in made if s.patient_key})),
            ),
            session=session,
        )


def _only(locked: LockedRows, wanted: set[tuple[str, str]]) -> LockedRows:
    """The locked rows of ``wanted`` only (save_resources checks it was given those)."""
    return LockedRows(frozenset(wanted), {k: v for k, v in locked.rows.items() if k in wanted})


def _count(run: MarkRun, before: list[str], after: list[str]) -> None:
    if after:
        run.marked += 1
    elif before:
        run.unmarked += 1

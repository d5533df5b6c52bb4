"""One ``adapter sync`` run: read each source's window, store, reconcile, report.

Why a killed run gives the same result as an uninterrupted one:

* the window of each source (since = bookmark minus the overlap, until = the start of the
  run) is written in the run row before anything is read; a started-again run with the same
  day and sources takes that row up (``attempts`` + 1) and reads the same window;
* every ``checkpoint_every`` documents the position of the last one stored is saved; the
  resumed run starts after it. What was stored after the checkpoint is read again and the
  pipeline recognises its bytes (sha256 per source): no second message, no second version,
  no second outbox row;
* the bookmark of a source moves only when its whole window is stored, in the same
  transaction that marks it done; the report is built from the ledger, not from what this
  process happened to do.

With ``jobs`` > 1 (``adapter sync --jobs N``) the run is opened here all the same, then its
sources are shared out among child processes (adapter/sync/shares.py), each reading its
sources exactly as above; this process waits, then reconciles and reports from the ledger.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session, sessionmaker

from adapter.consortium import Consortium
from adapter.errors import AdapterError
from adapter.pipeline.receipt import Channel, Receipt
from adapter.pipeline.results import IngestResult
from adapter.store.lengths import over_limit
from adapter.store.models import SyncItem, SyncRun
from adapter.store.outbox.acks import requeue_dead
from adapter.sync import ledger
from adapter.sync.config import SyncConfig, SyncSource
from adapter.sync.fetch import Claim, Fetcher, Item, SourceDown
from adapter.sync.reconcile import has_gaps, reconcile, volume_alert

Receipted = tuple[bytes, Receipt]

log = logging.getLogger(__name__)

EXIT_OK, EXIT_GAPS, EXIT_UNREACHABLE = 0, 1, 2


@dataclass
class Progress:
    """Told of every stored document; adapter/sync/progress.py draws it."""

    start: Callable[[str, int | None], None] = lambda source, total: None
    step: Callable[[int], None] = lambda done: None
    end: Callable[[], None] = lambda: None


@dataclass
class Outcome:
    report: dict[str, Any]
    exit_code: int
    run_id: str
    errors: dict[str, str] = field(default_factory=dict)


def build_fetcher(item: SyncSource, zone: ZoneInfo) -> Fetcher:
    if item.files is not None:
        from adapter.sync.files import FileFetcher

        return FileFetcher(item.files, item.content_type)
    if item.fhir is not None:
        from adapter.sync.fhir import FhirFetcher

        return FhirFetcher(item.id, item.fhir, zone)
    from adapter.sync.database import DatabaseFetcher

    assert item.database is not None
    return DatabaseFetcher(item.id, item.database, zone)


class SyncRunner:
    def __init__(
        self,
        consortium: Consortium,
        pipeline: Any,
        factory: sessionmaker[Session],
        *,
        progress: Progress | None = None,
        jobs: int = 1,
        translate_workers: int | None = None,
    ) -> None:
        """``pipeline`` may be None when ``jobs`` > 1: the children store, not this process
        (``translate_workers``: the setting, passed on to them)."""
        if consortium.sync is None or not consortium.sync.sources:
            raise AdapterError("the consortium file has no sync sources (sync.sources)")
        self.config: SyncConfig = consortium.sync
        self.zone = ZoneInfo(consortium.timezone or "Asia/Shanghai")
        self.pipeline = pipeline
        self.factory = factory
        self.progress = progress or Progress()
        self.jobs = jobs
        self.translate_workers = translate_workers
        self.consortium = consortium

    def yesterday(self) -> date:
        return datetime.now(self.zone).date() - timedelta(days=1)

    def select(self, ids: list[str] | None) -> list[SyncSource]:
        chosen = [s for s in self.config.sources if not ids or s.id in ids]
        unknown = set(ids or ()) - {s.id for s in chosen}
        if unknown:
            known = ", ".join(s.id for s in self.config.sources)
            raise AdapterError(f"unknown sync source {sorted(unknown)[0]!r}; known: {known}")
        return chosen

    # -- the run -----------------------------------------------------------------------------
    def run(self, day: date, ids: list[str] | None = None, *, replay_gaps: bool = False) -> Outcome:
        sources = self.select(ids)
        fetchers: dict[str, Fetcher] = {}
        errors: dict[str, str] = {}
        try:
            for item in sources:
                fetchers[item.id] = build_fetcher(item, self.zone)
            run_id, windows, checkpoints = self._open(day, sources, fetchers, replay_gaps, errors)
            died = False
            if self.jobs > 1:
                todo = [
                    s
                    for s in sources
                    if s.id not in errors and not (checkpoints.get(s.id) or {}).get("done")
                ]
                if todo:
                    died = self._in_shares(run_id, todo, fetchers, windows, errors)
            for item in sources:
                if item.id in errors or self.jobs > 1:
                    continue
                try:
                    if replay_gaps:
                        self._replay(run_id, item, fetchers[item.id], day)
                    else:
                        self._read(
                            run_id,
                            item,
                            fetchers[item.id],
                            windows[item.id],
                            checkpoints.get(item.id),
                        )
                except SourceDown as exc:
                    errors[item.id] = exc.message
                    log.warning("sync source %s: %s", item.id, exc.message)
            report = self._report(run_id, day, sources, fetchers, errors)
        finally:
            for fetcher in fetchers.values():
                fetcher.close()
        code = EXIT_UNREACHABLE if errors else EXIT_GAPS if report["totals"]["gaps"] else EXIT_OK
        report["exit_code"] = code
        with self.factory.begin() as session:
            if died:  # as after a killed process: the next start resumes from the checkpoints
                ledger.note_report(session, run_id, report=report, exit_code=code)
            else:
                now = datetime.now(UTC)
                ledger.finish_run(session, run_id, report=report, exit_code=code, now=now)
        return Outcome(report, code, run_id, errors)

    def _in_shares(
        self,
        run_id: str,
        todo: list[SyncSource],
        fetchers: dict[str, Fetcher],
        windows: dict[str, Any],
        errors: dict[str, str],
    ) -> bool:
        """Share ``todo`` out among ``jobs`` child processes and wait for them; True when a
        child died (its unfinished sources are in ``errors``)."""
        from adapter.sync import shares

        counts: dict[str, int | None] = {}
        for item in todo:
            try:
                counts[item.id] = fetchers[item.id].total(windows[item.id])
            except SourceDown:
                counts[item.id] = None  # the child will say why
        names = [s.id for s in todo]
        with self.factory() as session:
            per_document = shares.seconds_per_document(session, names)
        formats = {s.id: self._format(s.source) for s in todo}
        costs = shares.expected_costs(names, counts, per_document, formats)
        planned = shares.plan(costs, self.jobs)
        for number, share in enumerate(planned, 1):
            log.info(
                "sync: share %d: %s (expected cost %.0f)",
                number,
                ", ".join(share),
                sum(costs[s] for s in share),
            )
        known = [c for c in counts.values() if c is not None]
        self.progress.start(f"{len(todo)} sources in {len(planned)} processes", sum(known) or None)
        try:
            combined = shares.Combined(self.progress.step)
            env = shares.child_environment(len(planned), self.translate_workers)
            found, died = shares.run_children(run_id, planned, combined, env=env)
        finally:
            self.progress.end()
        for source, message in found.items():
            errors[source] = message
            log.warning("sync source %s: %s", source, message)
        return died

    def _format(self, system: str) -> str:
        for facility in self.consortium.facilities:
            for source in facility.sources:
                if source.id == system:
                    return source.format
        return ""

    def run_share(self, run_id: str, ids: list[str]) -> dict[str, str]:
        """The child's part of a ``--jobs`` run: read ``ids`` in the windows the parent wrote
        in the run row, from their checkpoints; returns the sources that could not be read."""
        with self.factory() as session:
            run = session.get(SyncRun, run_id)
            if run is None or run.state != "running":
                raise AdapterError(f"sync run {run_id} is not running")
            windows, checkpoints = dict(run.windows), dict(run.checkpoints or {})
            day, replay = date.fromisoformat(run.day), run.replay
        errors: dict[str, str] = {}
        fetchers: dict[str, Fetcher] = {}
        try:
            for item in self.select(ids):
                if item.id not in windows:
                    continue  # unreachable when the run began: the parent reports it
                try:
                    fetchers[item.id] = fetcher = build_fetcher(item, self.zone)
                    if replay:
                        self._replay(run_id, item, fetcher, day)
                    else:
                        window, point = windows[item.id], checkpoints.get(item.id)
                        self._read(run_id, item, fetcher, window, point)
                except SourceDown as exc:
                    errors[item.id] = exc.message
        finally:
            for fetcher in fetchers.values():
                fetcher.close()
        return errors

    def _open(
        self,
        day: date,
        sources: list[SyncSource],
        fetchers: dict[str, Fetcher],
        replay: bool,
        errors: dict[str, str],
    ) -> tuple[str, dict[str, Any], dict[str, Any]]:
        names = [s.id for s in sources]
        given_up: tuple[str, int] | None = None
        with self.factory.begin() as session:
            found = ledger.open_run(session, day.isoformat(), names, replay)
            if found is not None:
                found.attempts += 1
                if found.attempts > self.config.max_attempts + 10 * len(names):
                    # a run that keeps dying is given up visibly instead of looping forever
                    found.state = "failed"
                    found.finished_at = datetime.now(UTC)
                    given_up = (found.id, found.attempts - 1)
        if given_up is not None:  # raised after the commit, so the row says "failed"
            raise AdapterError(
                f"sync run {given_up[0]} was started {given_up[1]} times without "
                "finishing; given up (see adapter sync history)"
            )
        with self.factory.begin() as session:
            found = ledger.open_run(session, day.isoformat(), names, replay)
            if found is not None:
                log.info("sync: resuming run %s (start %d)", found.id, found.attempts)
                windows, checkpoints = dict(found.windows), dict(found.checkpoints)
                # a source that could not be reached when the run began: try it again now
                missing = [item for item in sources if item.id not in windows]
                windows.update(self._windows(session, day, missing, fetchers, errors))
                found.windows = windows
                return found.id, windows, checkpoints
            windows = self._windows(session, day, sources, fetchers, errors)
            run = ledger.new_run(
                session, day.isoformat(), names, replay, windows, datetime.now(UTC)
            )
            return run.id, windows, {}

    def _windows(
        self,
        session: Session,
        day: date,
        sources: list[SyncSource],
        fetchers: dict[str, Fetcher],
        errors: dict[str, str],
    ) -> dict[str, Any]:
        windows: dict[str, Any] = {}
        for item in sources:
            minutes = item.overlap_minutes
            if minutes is None:
                minutes = self.config.overlap_minutes
            try:
                fetchers[item.id].check()
                windows[item.id] = fetchers[item.id].window(
                    day, ledger.bookmark(session, item.id), timedelta(minutes=minutes)
                )
            except SourceDown as exc:
                errors[item.id] = exc.message
        return windows

    def _read(
        self,
        run_id: str,
        item: SyncSource,
        fetcher: Fetcher,
        window: dict[str, Any],
        checkpoint: dict[str, Any] | None,
    ) -> None:
        if checkpoint and checkpoint.get("done"):
            return
        after = checkpoint.get("after") if checkpoint else None
        done = first = int(checkpoint.get("stored", 0)) if checkpoint else 0
        began = time.monotonic()
        self.progress.start(item.id, fetcher.total(window))
        self.progress.step(done)
        last: Item | None = None
        fitting = _keys_that_fit(item.id, fetcher.items(window, after))
        batches = _batched(fitting, self.config.checkpoint_every)
        for documents, results in self._ingested(item, batches):
            done = self._stored_batch(run_id, item, documents, results, done)
            last = documents[-1]
        self.progress.end()
        with self.factory.begin() as session:
            # read and seconds: this start's cost of the source, for planning --jobs shares
            final = {
                "done": True,
                "stored": done,
                "read": done - first,
                "seconds": round(time.monotonic() - began, 3),
            }
            if last is not None:
                final["after"] = last.position
            ledger.save_checkpoint(session, run_id, item.id, final)
            watermark = window.get("until")
            if watermark:
                ledger.set_bookmark(session, item.id, watermark, run_id, datetime.now(UTC))

    def _replay(self, run_id: str, item: SyncSource, fetcher: Fetcher, day: date) -> None:
        """Fetch and send only the gaps of the day: missing and quarantined keys; dead
        deliveries of received keys are queued again."""
        claim = fetcher.claim(day)
        with self.factory() as session:
            part = reconcile(session, item, day.isoformat(), claim, None)
        keys = set(part["gaps"]["missing"]) | set(part["gaps"]["quarantined"])
        self.progress.start(item.id, len(keys))
        done = 0
        wanted = (d for d in fetcher.fetch_keys(day, keys) if d.key in keys)
        batches = _batched(_keys_that_fit(item.id, wanted), self.config.checkpoint_every)
        for documents, results in self._ingested(item, batches):
            done += self._record(run_id, item, documents, results, replayed=True)
            self.progress.step(done)
        self.progress.end()
        if part["gaps"]["undelivered"]:
            with self.factory.begin() as session:
                rows = ledger.items_of_day(session, item.id, day.isoformat())
                ids = [
                    r.message_id
                    for r in rows
                    if r.item_key in set(part["gaps"]["undelivered"]) and r.message_id
                ]
                requeue_dead(session, ids, now=datetime.now(UTC))
        with self.factory.begin() as session:
            ledger.save_checkpoint(session, run_id, item.id, {"done": True, "stored": done})

    def _stored_batch(
        self,
        run_id: str,
        item: SyncSource,
        documents: list[Item],
        results: dict[int, IngestResult],
        done: int,
    ) -> int:
        """Record what became of ``documents`` (stored in one transaction, a savepoint each:
        ``_ingested``) in the ledger, then checkpoint after the last: a run killed at any
        point reads again from the previous checkpoint and the pipeline recognises what it
        stored."""
        done += len(documents)
        checkpoint = {"after": documents[-1].position, "stored": done}
        self._record(run_id, item, documents, results, replayed=False, checkpoint=checkpoint)
        self.progress.step(done)
        return done

    def _ingested(
        self, item: SyncSource, batches: Iterable[list[Item]]
    ) -> Iterator[tuple[list[Item], dict[int, IngestResult]]]:
        """Ingest the documents of each batch that carry bytes in one transaction
        (Pipeline.ingest_batches: with translation workers, the next batch is read and
        translated while this one is stored); each batch with its results, by ``id`` of
        the document."""

        batches = iter(batches)
        first = next(batches, None)
        if first is None:  # nothing read: the pipeline is not needed
            return

        def receipts() -> Iterator[tuple[tuple[list[Item], list[Item]], list[Receipted]]]:
            for documents in itertools.chain([first], batches):
                carried = [d for d in documents if d.raw is not None]
                yield (documents, carried), [(d.raw, self._receipt(item, d)) for d in carried]

        for (documents, carried), results in self.pipeline.ingest_labelled(receipts()):
            yield documents, dict(zip((id(d) for d in carried), results, strict=True))

    @staticmethod
    def _receipt(item: SyncSource, document: Item) -> Receipt:
        return Receipt(item.source, Channel.SYNC, f"{item.id}:{document.key}", item.content_type)

    def _record(
        self,
        run_id: str,
        item: SyncSource,
        documents: list[Item],
        results: dict[int, IngestResult],
        *,
        replayed: bool,
        checkpoint: dict[str, Any] | None = None,
    ) -> int:
        """Write what became of every one of ``documents`` in the ledger and, when given,
        the ``checkpoint`` after them, in one transaction (one commit fewer per batch than
        two: decision 0044); returns how many."""
        with self.factory.begin() as session:
            known = ledger.items_to_record(session, item.id, [d.key for d in documents])
            for document in documents:
                message_id = status = digest = None
                result = results.get(id(document))
                if result is not None and document.raw is not None:
                    message_id, status = result.message_id, result.status
                    digest = hashlib.sha256(document.raw).hexdigest()
                ledger.record_item(
                    session,
                    source=item.id,
                    facility=item.facility,
                    kind=item.document_kind,
                    key=document.key,
                    day=document.day,
                    op=document.op,
                    sha256=digest,
                    message_id=message_id,
                    status=status,
                    run_id=run_id,
                    replayed=replayed,
                    now=datetime.now(UTC),
                    known=known,  # one read for the batch; new rows written at the commit
                )
            if checkpoint is not None:
                ledger.save_checkpoint(session, run_id, item.id, checkpoint)
        return len(documents)

    # -- the report --------------------------------------------------------------------------
    def _report(
        self,
        run_id: str,
        day: date,
        sources: list[SyncSource],
        fetchers: dict[str, Fetcher],
        errors: dict[str, str],
    ) -> dict[str, Any]:
        parts = []
        started = time.monotonic()
        for item in sources:
            claim: Claim | None = None
            error = errors.get(item.id)
            if error is None:
                try:
                    claim = fetchers[item.id].claim(day)
                except SourceDown as exc:
                    error = errors[item.id] = exc.message
            with self.factory() as session:
                part = reconcile(session, item, day.isoformat(), claim, error)
                history = ledger.past_counts(
                    session, item.id, day.isoformat(), self.config.volume_history_runs
                )
            part["volume_alert"] = volume_alert(part, history, self.config.volume_drop_percent)
            parts.append(part)
        gaps = sum(
            len(p["gaps"]["missing"])
            + len(p["gaps"]["quarantined"])
            + len(p["gaps"]["undelivered"])
            + (p["gaps"]["count_shortfall"] if not p["gaps"]["missing"] else 0)
            for p in parts
        )
        return {
            "run": {
                "id": run_id,
                "day": day.isoformat(),
                "reconciled_in_ms": round((time.monotonic() - started) * 1000),
            },
            "sources": parts,
            "totals": {
                "sources": len(parts),
                "unreachable": sum(1 for p in parts if p["error"]),
                "received": sum(p["received"]["total"] for p in parts),
                "gaps": gaps,
                "alerts": sum(1 for p in parts if p["volume_alert"]),
            },
            "with_gaps": [p["sync_source"] for p in parts if has_gaps(p)],
        }


def _keys_that_fit(source: str, documents: Iterable[Item]) -> Iterator[Item]:
    """``documents`` without those whose business key is longer than the ledger's column
    (``sync_item.item_key``): PostgreSQL would refuse the ledger row after the document was
    stored (and every start again would fail at the same batch), SQLite would keep it whole.
    Such a document is not stored on either database; the source still lists its key, so
    the report shows it missing, and the log says why (its length, never the key itself:
    decision 0094)."""
    column = SyncItem.__table__.c.item_key
    for document in documents:
        problem = over_limit(column, document.key, "its business key")
        if problem is None:
            yield document
            continue
        log.warning(
            "sync source %s: the document at position %s is not stored: %s "
            "(sync_item.item_key); it stays a gap until the source gives it a shorter key",
            source,
            document.position,
            problem,
        )


def _batched(documents: Iterable[Item], size: int) -> Iterator[list[Item]]:
    """``documents`` in lists of ``size`` (the last one shorter)."""
    batch: list[Item] = []
    for document in documents:
        batch.append(document)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch

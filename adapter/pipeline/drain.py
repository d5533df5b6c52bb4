"""The drain: documents kept on receipt (status ``received``, adapter/pipeline/on_receipt.py)
are translated and stored in batches through the bulk path's steps
(adapter/pipeline/bulk.py), oldest first (docs/decisions/0063-answer-on-receipt.md).

Each message settles exactly as the synchronous path would have settled the same bytes: the
same steps, at the moment it was received, with the same quarantine, issues, audit events,
outbox rows and final status. A batch is first stored *at once* (decision 0116, as bulk
ingest since decision 0101): no savepoint a message and, on PostgreSQL, the batch's locks
and rows taken in a few statements at its start. If a message fails there, the transaction
rolls back and the batch is stored again with a savepoint a message (translated again);
a message that fails in its savepoint (a value the database refuses, a concurrent insert,
a bug), and every message of a batch whose transaction failed as a whole, is settled again
alone (``Pipeline._settle``, its retries and located refusal). One bad message never costs
the others their results.

Who takes which message:

* Both: the rows are read and translated before the write transaction (on SQLite it would
  stop receipts meanwhile; on both, the store would wait for the translation workers), and
  the translations of the next batch are started before this one is stored (``ahead``).
* PostgreSQL: inside the transaction that stores them, the batch's rows still ``received``
  are claimed (``FOR NO KEY UPDATE SKIP LOCKED``: a duplicate's audit record may still
  reference a claimed row), so several processes drain side by side, each storing other
  rows (one that translated a row another drain took only wasted the translation); a
  drain that dies rolls back, and its rows are ``received`` again for the next one.
* SQLite: inside the write transaction only those still ``received`` are stored (one writer
  at a time: two drains never store a message twice, the second one only wasted a
  translation).
* Settling a message alone locks its row and checks it is still ``received``.

The synchronous path (``Pipeline.ingest``, group commit, bulk ingest) writes its message row
in the transaction that settles it, so a committed ``received`` row is always one kept on
receipt: the drain never meets a row another request still works on.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Select, func, select
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, undefer

from adapter.consortium import Facility, SourceSystem
from adapter.errors import AdapterError, Issue
from adapter.pipeline import bulk
from adapter.pipeline.ingest import Pipeline, _Job, _lost_race, _LostRace, try_again
from adapter.pipeline.results import RECEIVED, IngestResult, result_of
from adapter.pipeline.thread_name import name_os_thread
from adapter.pipeline.translation_pool import TranslationPool
from adapter.pipeline.translator import Outcome
from adapter.store import get_message, read_only, verified_raw
from adapter.store.messages import reopen_received
from adapter.store.models import InboundMessage
from adapter.store.resources import batch_writes, flush_batch_writes

log = logging.getLogger(__name__)
_RECEIVED = InboundMessage.status == RECEIVED

DEFAULT_BATCH = 100  # messages per transaction (bulk ingest's measured best, decision 0034)
IDLE_SECONDS = 1.0  # with nothing to do, look again this often (receipts of other processes)
GATHER_SECONDS = 0.1  # woken by a receipt: let a few more arrive before taking a batch
# while receipts keep arriving (a burst), the drain leaves them the process's CPU (one GIL)
# and SQLite's write lock, until they pause for QUIET_SECONDS or the first document waiting
# is DEFER_SECONDS old (decision 0063: receipts alone ~4x faster than with a drain beside)
DEFER_SECONDS = 2.0
QUIET_SECONDS = 0.05
DRAIN_THREAD = "adapter-drain"  # the drain thread's name for the OS (top -H, /proc)


class _Settled(AdapterError):
    """The message is no longer ``received``: another drain settled it meanwhile."""


@dataclass(slots=True)
class Backlog:
    """Messages kept on receipt and not yet drained."""

    count: int
    oldest: datetime | None

    def oldest_age_seconds(self, now: datetime | None = None) -> float:
        if self.oldest is None:
            return 0.0
        return max(0.0, ((now or datetime.now(UTC)) - self.oldest).total_seconds())


def backlog(session: Session) -> Backlog:
    count, oldest = session.execute(
        select(func.count(), func.min(InboundMessage.received_at)).where(
            InboundMessage.status == RECEIVED
        )
    ).one()
    if oldest is not None and oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=UTC)
    return Backlog(int(count), oldest)


def drain(pipeline: Pipeline, *, batch: int = DEFAULT_BATCH) -> int:
    """Drain until nothing is left that this process can take; how many were settled."""
    done = 0
    ahead: Ahead = {}
    while True:
        settled = drain_batch(pipeline, batch, ahead=ahead)
        done += len(settled)
        if len(settled) < batch:
            return done


def drain_batch(
    pipeline: Pipeline, limit: int = DEFAULT_BATCH, *, ahead: Ahead | None = None
) -> list[IngestResult]:
    """Settle up to ``limit`` received messages, oldest first, in one transaction (at once;
    again with a savepoint each if one fails: ``_store_batch``); [] when none is waiting (or
    every one is another drain's).

    ``ahead`` (SQLite, with translation workers): the next batch's translations, started
    by this call before it stores and taken by the next call, so that the workers
    translate batch *k + 1* while this process stores batch *k*."""
    postgresql = pipeline.factory.kw["bind"].dialect.name == "postgresql"
    # translated before the write transaction (decision 0102 on PostgreSQL too): on
    # SQLite receipts go on meanwhile, on both the store never waits for a translation
    started = ahead if ahead is not None else {}
    with pipeline.factory() as session:
        read_only(session)
        workers = pipeline.translation_pool is not None
        reach = limit * 2 if ahead is not None and workers else limit
        waiting = list(session.scalars(_waiting_ids(reach)))
        # the bytes only of those not sent ahead already (decision 0076)
        new = _received_rows(session, [i for i in waiting if i not in started])
        pool = _pool_for(pipeline, len(waiting))
        fresh = _prepare_all(pipeline, list(new.values()), pool)
    found = {i: started.get(i) or fresh[i] for i in waiting if i in started or i in fresh}
    ready = sum(1 for i in itertools.islice(found, limit) if i in started)
    started.clear()  # those no longer received were settled meanwhile: dropped
    started.update(itertools.islice(found.items(), limit, None))
    # translations from workers awaited here, not in the write transaction
    awaited = time.perf_counter()
    prepared = {k: p.resolved() for k, p in itertools.islice(found.items(), limit)}
    if prepared and log.isEnabledFor(logging.DEBUG):  # where the drain waits (0156)
        log.debug(
            "drain: %d translations awaited %.1f ms (%d started ahead, %d more waiting)",
            len(prepared),
            1000 * (time.perf_counter() - awaited),
            ready,
            len(started),
        )
    if not prepared:
        return []
    try:
        ids, results, alone = _store_batch(pipeline, prepared, postgresql, at_once=True)
    except bulk._Again as again:
        log.info(
            "drain: a message from %s failed in a batch of %d (%s): the batch is stored again,"
            " each message in a savepoint of its own",
            again.source_id,
            len(prepared),
            again.reason,
        )
        # translated again here: the first attempt's steps may have changed the resources
        # they were given (as bulk ingest does, decision 0101)
        prepared = _translated_again(pipeline, list(prepared))
        ids, results, alone = _store_batch(pipeline, prepared, postgresql, at_once=False)
    for i in alone:
        results[i] = settle_alone(pipeline, ids[i])
    return [r for r in results if r is not None]


def translate_ahead(pipeline: Pipeline, limit: int, ahead: Ahead) -> int:
    """Start translating, in the drain's workers, the oldest ``limit`` received documents
    not in ``ahead`` yet (added to it, for ``drain_batch`` to take); how many were sent.
    None without workers, or fewer than the pool takes (decision 0156)."""
    pool = pipeline.translation_pool
    if pool is None:
        return 0
    with pipeline.factory() as session:
        read_only(session)
        waiting = [i for i in session.scalars(_waiting_ids(limit)) if i not in ahead]
        if not pool.usable(len(waiting)):
            return 0
        rows = _received_rows(session, waiting)
        new = [rows[i] for i in waiting if i in rows]  # the oldest translated first
        ahead.update(_prepare_all(pipeline, new, pool))
    return len(new)


def _store_batch(
    pipeline: Pipeline, prepared: dict[str, _Prepared], postgresql: bool, *, at_once: bool
) -> tuple[list[str], list[IngestResult | None], list[int]]:
    """One transaction: claim those of ``prepared`` still received and store them; (the
    claimed ids, their results, the indexes of those to settle alone).

    ``at_once``: no savepoint a message and, on PostgreSQL, the batch's locks and rows taken
    for all its messages at its start (bulk ingest's ``_read_rows``, decision 0101; here
    decision 0116); the first message to fail raises ``bulk._Again``, the transaction rolls
    back, and the caller stores the batch again a savepoint a message."""
    ids: list[str] = []
    results: list[IngestResult | None] = []
    try:
        with pipeline.factory.begin() as session:
            claim = (
                select(InboundMessage)
                .where(InboundMessage.id.in_(list(prepared)), _RECEIVED)
                .order_by(InboundMessage.received_at, InboundMessage.id)
            )
            if postgresql:  # those another drain holds are skipped, not waited for
                claim = claim.with_for_update(skip_locked=True, key_share=True)
            rows = list(session.scalars(claim))
            ids = [m.id for m in rows]
            results = [None] * len(rows)
            writes = batch_writes(session)
            jobs = list(_jobs(rows, prepared))
            if at_once and postgresql:
                bulk._read_rows(pipeline, session, [job for _, job in jobs])
            alone = bulk._store_jobs(
                pipeline, session, writes, jobs, results, savepoints=not at_once
            )
            flush_batch_writes(session)  # a failure here fails the batch: each alone
    except SQLAlchemyError as exc:
        if not ids:
            raise  # nothing was taken (the database is unavailable): try again later
        log.warning("drain: a batch of %d failed (%s)", len(ids), type(exc).__name__)
        results, alone = [None] * len(ids), list(range(len(ids)))
    return ids, results, alone


def _translated_again(pipeline: Pipeline, ids: list[str]) -> dict[str, _Prepared]:
    """Fresh translations, in this process, of those of ``ids`` still received."""
    with pipeline.factory() as session:
        read_only(session)
        rows = _received_rows(session, ids)
        fresh = _prepare_all(pipeline, [rows[i] for i in ids if i in rows], None)
    return {i: fresh[i] for i in ids if i in fresh}


# translations started for the next batch, by message id (drain_batch's ``ahead``)
Ahead = dict[str, "_Prepared"]


def _waiting_ids(limit: int) -> Select[tuple[str]]:
    return _waiting(limit).with_only_columns(InboundMessage.id)


def _received_rows(session: Session, ids: list[str]) -> dict[str, InboundMessage]:
    """The rows of ``ids`` still received, with their bytes, by id."""
    if not ids:
        return {}
    query = select(InboundMessage).options(undefer(InboundMessage.raw))
    return {m.id: m for m in session.scalars(query.where(InboundMessage.id.in_(ids), _RECEIVED))}


def _waiting(limit: int) -> Select[tuple[InboundMessage]]:
    return (
        select(InboundMessage)
        # the bytes with the rows: a deferred column is one SELECT per message otherwise
        .options(undefer(InboundMessage.raw))
        .where(_RECEIVED)
        .order_by(InboundMessage.received_at, InboundMessage.id)
        .limit(limit)
    )


@dataclass(slots=True)
class _Prepared:
    """A received message's translation (started, or made): what settling it needs."""

    facility: Facility
    source_id: str
    outcome: Callable[[], Outcome]

    def resolved(self) -> _Prepared:
        outcome = self.outcome()
        return _Prepared(self.facility, self.source_id, lambda: outcome)


def _pool_for(pipeline: Pipeline, size: int) -> TranslationPool | None:
    """The drain's translation workers, when it has them and ``size`` is worth sending."""
    pool = pipeline.translation_pool
    return pool if pool is not None and pool.usable(size) else None


def _prepare(pipeline: Pipeline, message: InboundMessage) -> _Prepared:
    """Translate ``message`` in this process (settling it alone)."""
    return _prepare_all(pipeline, [message], None)[message.id]


def _prepare_all(
    pipeline: Pipeline, messages: list[InboundMessage], pool: TranslationPool | None
) -> dict[str, _Prepared]:
    """Start translating ``messages``, by id in their order: in the translation workers
    when the drain has them (in chunks, one round trip each: decision 0066), here
    otherwise."""
    failed: dict[str, _Prepared] = {}
    sent: list[tuple[InboundMessage, Facility, SourceSystem, bytes]] = []
    for message in messages:
        found = pipeline.consortium.source(message.source_system)
        if found is None:  # the source was removed since: kept, quarantined, reprocessable
            issue = Issue(
                "error",
                "not-found",
                f"source system {message.source_system!r} is no longer configured; the "
                "message is kept and can be reprocessed once it is",
            )
            facility = pipeline.consortium.facility(message.facility_id or "")
            failed[message.id] = _failed(message, facility, [issue])
            continue
        facility, source = found
        try:
            raw = verified_raw(message)
        except AdapterError as exc:  # bytes altered in the database: never translated
            failed[message.id] = _failed(message, facility, exc.issues)
            continue
        sent.append((message, facility, source, raw))
    started: dict[str, _Prepared] = {}
    if pool is not None:
        outcomes = pool.submit_many([(raw, source.id, m.id) for m, _, source, raw in sent])
        for (message, facility, source, _), outcome in zip(sent, outcomes, strict=True):
            started[message.id] = _Prepared(facility, source.id, outcome)
    else:
        for message, facility, source, raw in sent:
            done = pipeline.translator.translate_for(raw, facility, source, message.id)
            started[message.id] = _Prepared(facility, source.id, lambda done=done: done)
    return {m.id: failed.get(m.id) or started[m.id] for m in messages}


def _failed(message: InboundMessage, facility: Facility | None, issues: list[Issue]) -> _Prepared:
    outcome = Outcome.failure(issues, message.detected_format)
    if facility is None:  # only the quarantine steps run, which do not read the facility
        facility = Facility.model_construct(id=message.facility_id or "", sources=[])
    return _Prepared(facility, message.source_system, lambda: outcome)


def _jobs(rows: list[InboundMessage], prepared: dict[str, _Prepared]) -> Iterator[tuple[int, _Job]]:
    for i, message in enumerate(rows):
        ready = prepared[message.id]
        yield i, _job(message, ready.facility, ready.source_id, ready.outcome())


def _job(message: InboundMessage, facility: Facility, source_id: str, outcome: Outcome) -> _Job:
    """Settle ``message`` (loaded in the batch's transaction) with ``outcome``: the same job
    as the synchronous path's, at the moment it was received."""

    def reopen(session: Session) -> InboundMessage:
        # written with its result, in one UPDATE (decision 0076)
        reopen_received(session, message, detected_format=outcome.format, encoding=outcome.encoding)
        return message

    return _Job(reopen, facility, source_id, outcome, message.received_at, message.channel or "")


def settle_alone(pipeline: Pipeline, message_id: str) -> IngestResult | None:
    """Settle one received message in a transaction of its own (``Pipeline._settle``: its
    quarantine of a refused value or a bug), retrying lost races as ``Pipeline.ingest``
    does; None if it no longer exists."""
    for attempt in itertools.count():
        with pipeline.factory() as session:
            read_only(session)
            message = get_message(session, message_id)
            if message is None or message.status != RECEIVED:
                return result_of(message) if message is not None else None
            ready = _prepare(pipeline, message)
            moment, channel = message.received_at, message.channel or ""
        outcome = ready.outcome()
        job = _Job(
            _reopen_locked(message_id, outcome),
            ready.facility,
            ready.source_id,
            outcome,
            moment,
            channel,
        )
        try:
            return pipeline._settle(job)
        except _Settled:
            break
        except (_LostRace, OperationalError) as exc:
            if isinstance(exc, OperationalError) and not _lost_race(exc):
                raise
            if not try_again(exc, attempt):
                if isinstance(exc, OperationalError):
                    raise
                return pipeline._keep_refused(job, exc.tried, exc.error)
            log.info("drain: retrying message %s after a concurrent write", message_id)
    with pipeline.factory() as session:  # settled by another drain meanwhile
        found = get_message(session, message_id)
        return result_of(found) if found is not None else None


def _reopen_locked(message_id: str, outcome: Outcome) -> Callable[[Session], InboundMessage]:
    def reopen(session: Session) -> InboundMessage:
        message = session.get(
            InboundMessage,
            message_id,
            with_for_update={"key_share": True},  # SQLite: the transaction's write lock
            populate_existing=True,
        )
        if message is None or message.status != RECEIVED:
            raise _Settled(f"message {message_id} was settled meanwhile")
        message.detected_format = outcome.format
        message.encoding = outcome.encoding
        return message

    return reopen


class Drainer:
    """A thread draining in the background (``adapter serve``'s, ``adapter drain
    --follow``'s): woken by every receipt this process keeps, and every ``idle_seconds``
    for those kept by other processes; it lets a burst of receipts go first (``_defer``)."""

    def __init__(
        self,
        pipeline: Pipeline,
        *,
        batch: int = DEFAULT_BATCH,
        idle_seconds: float = IDLE_SECONDS,
        gather_seconds: float = GATHER_SECONDS,
        defer_seconds: float = DEFER_SECONDS,
        workers: int = 0,
    ) -> None:
        self.pipeline = pipeline
        self.batch = batch
        self.idle_seconds = idle_seconds
        self.gather_seconds = gather_seconds
        self.defer_seconds = defer_seconds
        self._last_receipt = 0.0  # monotonic time of the last receipt this process kept
        self._waiting_since: float | None = None  # of the first receipt not yet taken
        self.workers = workers
        self.drained = 0  # messages settled by this drainer
        self.batches = 0
        self._woken = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="drain", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """A receipt was committed (called by ReceiptCommit.on_received)."""
        now = time.monotonic()
        self._last_receipt = now
        if self._waiting_since is None:
            self._waiting_since = now
        self._woken.set()

    def _defer(self) -> None:
        """Wait while receipts keep arriving, at most until the first one waiting is
        ``defer_seconds`` old."""
        since = self._waiting_since
        if since is None or self.defer_seconds <= 0:
            return
        deadline = since + self.defer_seconds
        while not self._stopping.is_set():
            now = time.monotonic()
            quiet = now - self._last_receipt
            if quiet >= QUIET_SECONDS or now >= deadline:
                return
            self._stopping.wait(min(QUIET_SECONDS - quiet, deadline - now))

    def stop(self, timeout: float = 60.0) -> None:
        """Stop after the batch under way (its transaction commits or rolls back whole)."""
        self._stopping.set()
        self._woken.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        name_os_thread(DRAIN_THREAD)
        ahead: Ahead = {}
        with self.pipeline.translation_workers(self.workers):
            full = True  # look at once: what a stopped server left behind
            while not self._stopping.is_set():
                if not full:
                    if self._woken.wait(self.idle_seconds) and self.gather_seconds:
                        if self.defer_seconds <= 0:
                            # the worker translates what waits while more gathers: the
                            # batch then waits only for the last arrivals' (decision 0156)
                            try:
                                translate_ahead(self.pipeline, self.batch, ahead)
                            except Exception:  # the database away: the batch will say
                                log.debug("drain: translating ahead failed", exc_info=True)
                        self._stopping.wait(self.gather_seconds)
                    if self._stopping.is_set():
                        return
                try:
                    full = self.step(ahead)
                except Exception:  # the database away: the messages stay received
                    log.exception("drain: a batch failed; its messages are taken again later")
                    self._stopping.wait(self.idle_seconds)
                    full = False

    def step(self, ahead: Ahead | None = None) -> bool:
        """One batch, once the defer allows it; True when it was full (more may wait)."""
        self._defer()
        self._woken.clear()
        since, self._waiting_since = self._waiting_since, None
        began = time.perf_counter()
        try:
            settled = drain_batch(self.pipeline, self.batch, ahead=ahead)
        except Exception:
            if since is not None:  # still waiting
                self._waiting_since = since
            raise
        if settled:
            self.drained += len(settled)
            self.batches += 1
            log.debug(
                "drain: %d messages settled in one batch (%.0f ms)",
                len(settled),
                1000 * (time.perf_counter() - began),
            )
        full = len(settled) >= self.batch
        if full and since is not None:
            # what the batch left has waited since then at least: the defer's bound counts
            # from it, not from the next receipt (a steady flow got one batch per bound)
            self._waiting_since = since
        return full


def wait_drained(pipeline: Pipeline, timeout: float, *, interval: float = 0.05) -> Backlog:
    """Wait until no message is ``received`` (or ``timeout``); the backlog then."""
    deadline = time.monotonic() + timeout
    while True:
        with pipeline.factory() as session:
            left = backlog(read_only(session))
        if left.count == 0 or time.monotonic() > deadline:
            return left
        time.sleep(interval)

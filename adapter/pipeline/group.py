"""Group commit for the single-document receivers (``POST /ingest``, the MLLP listener):
documents that arrive while a write transaction runs are stored together in the next one,
through the bulk path's savepoints (docs/decisions/0051-group-commit.md).

Each caller translates its own document in its own thread (in a translation worker
process when the server runs them, the thread waiting without the GIL: decision 0068),
then queues it. The first
caller to find nobody storing leads: it takes what is queued (up to ``max_group``, itself
first), stores it in one transaction with a savepoint per document
(adapter/pipeline/bulk.py), and once that transaction has committed hands every caller its
own result. Then the oldest still queued leads the next group. There is no waiting window:
a lone document is stored at once, and a group is what queued while the previous
transaction ran, plus the documents already received and still being translated when the
group is taken (waited for at most ARRIVAL_WAIT_SECONDS: without it, four clients made
groups of 3 and 1 in turn, the one left out having been answered last).

Each caller gets what ``Pipeline.ingest`` would have answered it:

* each document's steps run in its caller's ``contextvars`` context, so its audit events
  and log lines carry its own request id, caller and address;
* a document already received is answered as a duplicate, with its audit event;
* a document whose savepoint failed (a value the database refuses, a concurrent insert, a
  bug), the second of two identical documents in one group, and every document of a group
  whose transaction failed as a whole (the commit, the database gone) is ingested again on
  its own by its caller's thread through ``Pipeline.ingest``, after the group's
  transaction ended: the same retries, quarantine and errors as without grouping, and no
  answer for anything not committed;
* an unknown source, and a document over the size limit, never queue (``Pipeline.ingest``
  answers them at once);
* a group of one (nothing else queued) is stored by ``Pipeline.ingest``'s own steps, with
  the translation already made: a savepoint and held rows cost more than they save for
  one document, and its failures are its caller's.

``max_group`` <= 1 turns grouping off: every document goes through ``Pipeline.ingest``.
"""

from __future__ import annotations

import contextvars
import hashlib
import logging
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy.orm import Session

from adapter.pipeline import bulk, steps
from adapter.pipeline.receipt import Receipt
from adapter.pipeline.results import IngestResult, result_of
from adapter.store.models import InboundMessage
from adapter.store.resources import batch_writes, flush_batch_writes

if TYPE_CHECKING:
    from adapter.consortium import Facility, SourceSystem
    from adapter.pipeline.ingest import Pipeline, _Job
    from adapter.pipeline.translator import Outcome

log = logging.getLogger(__name__)

DEFAULT_MAX_GROUP = 32  # documents per transaction at most (ADAPTER_INGEST_GROUP_MAX)
# a group waits at most this long for documents received meanwhile and still translating
ARRIVAL_WAIT_SECONDS = 0.05


@dataclass(eq=False, slots=True)
class _Queued:
    """One caller's document, translated, waiting for its group's transaction."""

    raw: bytes
    receipt: Receipt
    source: SourceSystem
    key: tuple[str, str]  # (source, sha256): what a duplicate is found by
    message_id: str
    job: _Job
    context: contextvars.Context  # the caller's: request id, caller, log context
    woken: threading.Event = field(default_factory=threading.Event)
    result: IngestResult | None = None  # set only once the group's transaction committed
    lead: bool = False  # this caller stores the next group


class Arrival:
    """A document on its way to :meth:`GroupCommit.ingest` (read, then translated)."""

    def __init__(self, group: GroupCommit) -> None:
        self._group: GroupCommit | None = group
        group._count(1)

    def queued(self) -> None:
        """Its document is queued (the caller holds the group's lock)."""
        if self._group is not None:
            self._group._translating -= 1
            self._group = None

    def close(self) -> None:
        """It will not be queued (refused, failed, or the single path): do not wait for it."""
        group, self._group = self._group, None
        if group is not None:
            group._count(-1)


class GroupCommit:
    """Stores concurrent callers' documents in shared transactions (see the module)."""

    def __init__(self, pipeline: Pipeline, max_group: int = DEFAULT_MAX_GROUP) -> None:
        self.pipeline = pipeline
        self.max_group = max_group
        self._lock = threading.Lock()
        self._queued = threading.Condition(self._lock)  # notified when a caller queues
        self._queue: deque[_Queued] = deque()
        self._translating = 0  # documents announced (arrive) and not yet queued
        self._leading = False  # a caller is storing a group (invariant: else the queue is empty)
        self.groups = 0  # transactions of two documents or more committed (for tests, bench)
        self.grouped = 0  # documents answered from such a transaction

    @property
    def waiting(self) -> int:
        """Documents queued for the next group."""
        with self._lock:
            return len(self._queue)

    def arrive(self) -> Arrival:
        """Announce a document about to be read (``POST /ingest`` at the request's start):
        a group being taken waits for it (ARRIVAL_WAIT_SECONDS at most) until it is queued
        or the arrival is closed. Hand it to :meth:`ingest`, and close it in any case."""
        return Arrival(self)

    def _count(self, change: int) -> None:
        with self._queued:
            self._translating += change
            self._queued.notify_all()

    def ingest(self, raw: bytes, receipt: Receipt, arrival: Arrival | None = None) -> IngestResult:
        """What ``Pipeline.ingest(raw, receipt)`` answers, stored with whatever else is
        queued; returns once the document's transaction committed."""
        pipeline = self.pipeline
        arrival = arrival or self.arrive()
        try:
            if self.max_group <= 1 or len(raw) > pipeline.max_bytes:
                arrival.close()
                return pipeline.ingest(raw, receipt)
            # an unknown source raises here, as Pipeline.ingest does
            facility, source = pipeline.translator.source(receipt.source_system)
            digest = hashlib.sha256(raw).hexdigest()
            message_id = str(uuid.uuid4())
            # translated here, in the caller's thread, while another group may be storing
            outcome = _translate(pipeline, raw, facility, source, message_id)
        except BaseException:
            arrival.close()
            raise
        from adapter.pipeline.ingest import _creator, _Job  # the single path's own pieces

        create = _creator(raw, digest, facility, source, receipt, outcome, message_id)
        job = _Job(create, facility, source.id, outcome, receipt.received_at, receipt.channel)
        key = (source.id, digest)
        queued = _Queued(raw, receipt, source, key, message_id, job, contextvars.copy_context())
        with self._queued:
            arrival.queued()
            self._queue.append(queued)
            if not self._leading:
                self._leading = queued.lead = True
            self._queued.notify_all()
        if not queued.lead:
            queued.woken.wait()  # the group's result, or the lead of the next group
        if queued.lead:
            self._lead(queued)
        if queued.result is None:  # not stored in a group: on its own, as without grouping
            return pipeline.ingest(raw, receipt)
        return queued.result

    def _lead(self, own: _Queued) -> None:
        """Store the head of the queue (``own``, this caller's document, first) as one
        group, then hand the lead to the oldest caller still queued."""
        with self._queued:
            # documents already received and being translated join this group rather than
            # make the next one: a short wait, never for documents not yet received (a lone
            # document has nobody to wait for), and at most ARRIVAL_WAIT_SECONDS
            deadline = time.monotonic() + ARRIVAL_WAIT_SECONDS
            while self._translating and len(self._queue) < self.max_group:
                left = deadline - time.monotonic()
                if left <= 0 or not self._queued.wait(left):
                    break
            group = [self._queue.popleft() for _ in range(min(self.max_group, len(self._queue)))]
        assert group[0] is own
        try:
            if len(group) == 1:  # alone: the single path, its failures are this caller's
                own.result = self._alone(own)
                return
            try:
                self._store(group)
            except Exception as exc:  # each goes on its own: the single path says what failed
                log.warning(
                    "group commit: a group of %d failed (%s)", len(group), type(exc).__name__
                )
        finally:
            with self._lock:
                self._leading = hand_on(self._queue, group)

    def _alone(self, queued: _Queued) -> IngestResult:
        """A group of one: ``Pipeline.ingest`` with the translation already made (a
        savepoint and the held rows cost more than they save for one document)."""
        pipeline = self.pipeline
        log.debug("group commit: 1 document alone")
        duplicate = pipeline._duplicate(*queued.key)
        if duplicate is not None:
            return duplicate
        translated = (queued.message_id, queued.job.outcome)
        facility = queued.job.facility
        return pipeline._store_new(
            queued.raw, queued.receipt, facility, queued.source, queued.key[1], translated
        )

    def _store(self, group: list[_Queued]) -> None:
        """One transaction for ``group``; results are handed out only after its commit."""
        pipeline = self.pipeline
        results: list[IngestResult | None] = [None] * len(group)
        jobs: list[tuple[int, _Job]] = []
        contexts: dict[int, contextvars.Context] = {}
        with pipeline.factory.begin() as session:
            # inside the writing transaction: on SQLite nothing can insert the same bytes
            # meanwhile; on PostgreSQL a concurrent insert fails the savepoint (then alone)
            known = bulk._known(session, list({q.key for q in group}))
            writes = batch_writes(session)
            taken: set[tuple[str, str]] = set()
            for i, queued in enumerate(group):
                existing = known.get(queued.key)
                if existing is not None:
                    queued.context.run(_audit_duplicate, session, existing)
                    results[i] = result_of(existing, duplicate=True)
                elif queued.key not in taken:  # the second of identical bytes goes alone
                    taken.add(queued.key)
                    jobs.append((i, queued.job))
                    contexts[i] = queued.context
            bulk._store_jobs(pipeline, session, writes, jobs, results, contexts)
            flush_batch_writes(session)  # a failure here fails the group: each on its own
        for queued, result in zip(group, results, strict=True):
            queued.result = result  # None: ingested on its own by its caller
        self.groups += 1
        self.grouped += sum(r is not None for r in results)
        log.debug("group commit: %d documents in one transaction", len(group))


class Waiting(Protocol):
    """A caller queued for a shared transaction (group commit, answer on receipt)."""

    lead: bool
    woken: threading.Event


def _translate(
    pipeline: Pipeline, raw: bytes, facility: Facility, source: SourceSystem, message_id: str
) -> Outcome:
    """In the server's translation workers when it runs them (``ADAPTER_TRANSLATE_WORKERS``:
    the other core translates while this process stores), else in this thread."""
    pool = pipeline.translation_pool
    if pool is not None and pool.workers > 0 and not pool.broken:
        return pool.submit(raw, source.id, message_id)()
    return pipeline.translator.translate_for(raw, facility, source, message_id)


def hand_on(queue: deque[Any], group: list[Any]) -> bool:
    """After a group's transaction, under the queue's lock: the oldest caller still queued
    leads the next group; then every caller of the group is woken for its result. Whether
    someone leads now (the queue's ``_leading``)."""
    leads = bool(queue)
    if leads:
        following: Waiting = queue[0]
        following.lead = True
        following.woken.set()
    for waiting in group:
        waiting.woken.set()
    return leads


def _audit_duplicate(session: Session, existing: InboundMessage) -> None:
    steps.audit_received(session, existing, datetime.now(UTC), duplicate=True)

"""Bulk ingest: many messages in one transaction, each in a savepoint of its own
(``adapter ingest`` of many files, ``adapter sync``; docs/decisions/0034-bulk-ingest.md);
on PostgreSQL first without them (below, and decision 0101).

One transaction per message pays a commit (a WAL fsync on PostgreSQL, a WAL append and now
and then a checkpoint on SQLite), a duplicate lookup in a transaction of its own and an
audit-chain write per message. Here a batch of messages shares them:

* one SELECT finds which of the batch's bytes were already received (per source, by
  sha256); those are answered as duplicates, as ``Pipeline.ingest`` answers them;
* each message is translated (in worker processes while the store writes, when the run
  started them: adapter/pipeline/translation_pool.py; they get the next batch before this
  one is stored, and translate it meanwhile: decision 0069), then stored through the same steps
  as ``Pipeline.ingest``
  (adapter/pipeline/steps.py) inside ``SAVEPOINT``: a message that fails in any way (a
  value the database refuses, a concurrent insert, a bug) is rolled back to its savepoint
  alone, with the audit events it queued, and the others' work stays (the audit log's
  records of the whole batch are chained once, at the transaction's commit);
* the rows nothing of the steps reads back (search index, resource_version, outbox, each
  message's Provenance row: decision 0050) are written once, before the commit (one
  executemany or COPY per table), not per message; on SQLite, in a batch stored at once
  (below), each message's result UPDATE too (one executemany: decision 0133);
  a search writes the held index rows first (adapter/store/resources.py ``BatchWrites``,
  docs/decisions/0047-batch-writes.md); a message rolled back drops its rows with it;
* one commit;
* every message that failed in its savepoint is then ingested again on its own through
  ``Pipeline.ingest``, which retries races, quarantines what the database refuses with
  the located issue, and keeps the bytes in every case: nothing is lost, and one bad
  message never costs the others their work.

On PostgreSQL every statement is a round trip to the server (0.1-0.3 ms quiet, 2-8 ms under
load), so a batch is first stored *at once* (decision 0101): the rows its messages merge are
locked and read, the rows they store read, and the patient index's locks of their Patients
taken, in a few statements at its start (``_read_rows``), and the messages are stored without
a savepoint each. If any message fails, the whole transaction is rolled back and the batch
is stored again as described above (a savepoint a message, the messages translated again:
the first attempt may have changed the resources it was given), so that the failed one is
rolled back alone and goes the single-message way.

If the batch's commit itself, or the write of its held rows, fails (the database went
away, it refuses a value), every message of the batch
goes the single-message way, which reports the failure as ``Pipeline.ingest`` does (on
SQLite a batch stored at once is first stored again with savepoints: its held results
were refused, maybe one message's, which then fails alone, as before decision 0133).
A message over the size limit, and the second of two identical byte strings in one batch,
also go the single-message way (a refusal, a duplicate answer).
"""

from __future__ import annotations

import contextvars
import hashlib
import logging
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from adapter.errors import AdapterError
from adapter.identity.index.resolve import lock_batch
from adapter.identity.rules import rules_at
from adapter.pipeline import steps
from adapter.pipeline.merge import reads_stored
from adapter.pipeline.receipt import Receipt
from adapter.pipeline.results import IngestResult, result_of
from adapter.store import read_only
from adapter.store.keys import keys_in
from adapter.store.models import InboundMessage
from adapter.store.resources import (
    BatchWrites,
    batch_writes,
    flush_batch_writes,
    read_batch_rows,
)

if TYPE_CHECKING:
    from adapter.consortium import Facility, SourceSystem
    from adapter.pipeline.ingest import Pipeline, _Job
    from adapter.pipeline.translator import Outcome

log = logging.getLogger(__name__)

DEFAULT_BATCH = 100  # messages per transaction: see the decision for the measured curve

Item = tuple[bytes, Receipt]
Label = TypeVar("Label")


def ingest_many(
    pipeline: Pipeline, items: Iterable[Item], *, batch: int = DEFAULT_BATCH
) -> Iterator[IngestResult]:
    """Ingest ``items`` in transactions of up to ``batch`` messages; yields one result per
    item, in order, once its batch is committed."""
    for results in ingest_batches(pipeline, _chunked(items, batch)):
        yield from results


def ingest_batches(
    pipeline: Pipeline, batches: Iterable[list[Item]]
) -> Iterator[list[IngestResult]]:
    """Ingest each batch in one transaction (``ingest_batch``); yields each batch's results,
    in order, once it is committed.

    With translation workers, batch *k + 1* is taken from ``batches`` and sent to them
    before batch *k* is stored, so that they translate it while this process stores and
    commits batch *k* (at most one batch ahead: decision 0069). Without workers each batch
    is read, translated and stored in turn, as before."""
    started: _Started | None = None
    following = iter(batches)
    while True:
        if started is not None and not _ahead(pipeline, started):
            yield _finish(pipeline, started)
            started = None
        try:
            items = next(following)
        except StopIteration:
            break
        except Exception:  # reading the next batch failed (a source went away)
            if started is not None:  # what was read before is stored first, as before
                yield _finish(pipeline, started)
            raise
        ahead = _start(pipeline, items, ahead=started is not None)
        if started is not None:
            yield _finish(pipeline, started)
        started = ahead
    if started is not None:
        yield _finish(pipeline, started)


def ingest_labelled(
    pipeline: Pipeline, batches: Iterable[tuple[Label, list[Item]]]
) -> Iterator[tuple[Label, list[IngestResult]]]:
    """``ingest_batches`` for batches that carry what their caller reports them by (the
    documents they came from): each label with its batch's results. The label of batch
    *k + 1* is taken from ``batches`` before batch *k*'s results are yielded."""
    labels: deque[Label] = deque()

    def items() -> Iterator[list[Item]]:
        for label, batch in batches:
            labels.append(label)
            yield batch

    for results in ingest_batches(pipeline, items()):
        yield labels.popleft(), results


def ingest_batch(pipeline: Pipeline, items: list[Item]) -> list[IngestResult]:
    """Ingest ``items`` in one transaction, one savepoint each (the module's docstring)."""
    return _finish(pipeline, _start(pipeline, items))


def _chunked(items: Iterable[Item], size: int) -> Iterator[list[Item]]:
    chunk: list[Item] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _ahead(pipeline: Pipeline, started: _Started) -> bool:
    """Whether to take the next batch and start its translations before ``started`` is
    stored: only when workers translate batches of this size (in this process it would
    only move the work; a caller's batches are of one size but the last)."""
    pool = pipeline.translation_pool
    return pool is not None and pool.usable(len(started.items))


@dataclass(slots=True)
class _Started:
    """A batch whose duplicates were looked up and whose translations were started."""

    items: list[Item]
    sources: dict[int, tuple[Facility, SourceSystem]]  # looked up once per item
    keys: dict[int, tuple[str, str]]  # (source, sha256) of those stored in the batch
    known_ids: dict[tuple[str, str], str] | None  # already received (None: not looked up)
    alone: list[int]  # ingested on their own after the batch
    ids: dict[int, str]  # the message id of each to translate and store
    outcomes: dict[int, Callable[[], Outcome]]  # the translations started in the workers
    ahead: bool  # started before the previous batch was committed


def _start(pipeline: Pipeline, items: list[Item], *, ahead: bool = False) -> _Started:
    """Look up which of ``items`` were already received, and send the others to the
    translation workers when the run has them (translated in ``_finish`` otherwise)."""
    sources: dict[int, tuple[Facility, SourceSystem]] = {}
    keys: dict[int, tuple[str, str]] = {}
    alone: list[int] = []
    for i, (raw, receipt) in enumerate(items):
        try:
            sources[i] = pipeline.translator.source(receipt.source_system)
        except AdapterError:  # an unknown source: the single path says so for this item
            alone.append(i)
            continue
        key = (sources[i][1].id, hashlib.sha256(raw).hexdigest())
        if len(raw) > pipeline.max_bytes or key in keys.values():
            alone.append(i)  # refused as oversize / the duplicate of one in this batch
            continue
        keys[i] = key
    started = _Started(items, sources, keys, None, alone, {}, {}, ahead)
    try:
        known = started.known_ids = _known_ids(pipeline, list(keys.values()))
    except SQLAlchemyError:
        return started  # looked up again in _finish, which reports a failure as before
    started.ids = {i: str(uuid.uuid4()) for i, key in keys.items() if key not in known}
    pool = pipeline.translation_pool
    if pool is not None and pool.usable(len(started.ids)):
        # in a worker process, overlapping the store of the ones before it
        sent = [(items[i][0], items[i][1].source_system, m) for i, m in started.ids.items()]
        started.outcomes = dict(zip(started.ids, pool.submit_many(sent), strict=True))
    return started


def _known_ids(pipeline: Pipeline, keys: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
    with pipeline.factory() as session:  # a read: nothing is locked while translating
        read_only(session)  # on SQLite not even the write lock (adapter/store/engine.py)
        return {k: m.id for k, m in _known(session, keys).items()}


def _finish(pipeline: Pipeline, started: _Started) -> list[IngestResult]:
    """Store a started batch in one transaction; every item's result, in order."""
    items = started.items
    try:
        results, alone = _batch(pipeline, started)
    except SQLAlchemyError as exc:  # the commit itself failed: each on its own
        log.warning("bulk ingest: a batch of %d failed (%s)", len(items), type(exc).__name__)
        results, alone = [None] * len(items), list(range(len(items)))
    for i in sorted(alone):
        raw, receipt = items[i]
        results[i] = pipeline.ingest(raw, receipt)
    out = [r for r in results if r is not None]
    assert len(out) == len(items)
    return out


def _batch(pipeline: Pipeline, started: _Started) -> tuple[list[IngestResult | None], list[int]]:
    """The batch's transaction: its results, and the items to ingest on their own."""
    items, sources, keys = started.items, started.sources, started.keys
    known_ids = started.known_ids
    if started.ahead or known_ids is None:
        # started before the batch before it was committed (which may have stored some of
        # the same bytes: their translations are dropped), or the lookup failed
        known_ids = _known_ids(pipeline, list(keys.values()))
    translated: list[tuple[int, str, Callable[[], Outcome]]] = []
    for i, key in keys.items():
        if key in known_ids:
            continue
        message_id = started.ids.get(i) or str(uuid.uuid4())
        outcome = started.outcomes.get(i)
        if outcome is None:  # translated here, before the write transaction
            facility, source = sources[i]
            done = pipeline.translator.translate_for(items[i][0], facility, source, message_id)
            outcome = lambda done=done: done  # noqa: E731
        translated.append((i, message_id, outcome))

    try:
        return _attempt(pipeline, started, known_ids, translated, at_once=True)
    except _Again as again:
        log.info(
            "bulk ingest: a message from %s failed in a batch of %d (%s): the batch is stored"
            " again, each message in a savepoint of its own",
            again.source_id,
            len(items),
            again.reason,
        )
    # as the batch was first stored before decision 0101, from translations of its own (the
    # first attempt's steps may have changed the resources they were given)
    again_translated: list[tuple[int, str, Callable[[], Outcome]]] = []
    for i, message_id, _ in translated:
        facility, source = sources[i]
        done = pipeline.translator.translate_for(items[i][0], facility, source, message_id)
        again_translated.append((i, message_id, lambda done=done: done))
    return _attempt(pipeline, started, known_ids, again_translated, at_once=False)


class _Again(Exception):
    """A message failed in a batch stored without savepoints: the batch is rolled back and
    stored again, one savepoint a message."""

    def __init__(self, source_id: str, reason: str) -> None:
        super().__init__(source_id, reason)
        self.source_id, self.reason = source_id, reason


def _attempt(
    pipeline: Pipeline,
    started: _Started,
    known_ids: dict[tuple[str, str], str],
    translated: list[tuple[int, str, Callable[[], Outcome]]],
    *,
    at_once: bool,
) -> tuple[list[IngestResult | None], list[int]]:
    """Store the batch in one transaction: its results, and the items to ingest on their
    own. ``at_once``: the messages are stored without a savepoint each (two round trips a
    message fewer on PostgreSQL, SQLAlchemy's nested transaction and two statements on
    SQLite: decision 0120) and, on PostgreSQL, the batch's rows and locks are taken for all
    its messages first (``_read_rows``); the first one to fail raises ``_Again`` and the
    batch is rolled back (decision 0101). Otherwise each message is
    stored in its own savepoint, a failed one rolled back alone and ingested on its own
    after the commit."""
    from adapter.pipeline.ingest import _creator, _Job  # the single path's own pieces

    items, sources, keys = started.items, started.sources, started.keys
    results: list[IngestResult | None] = [None] * len(items)
    alone = list(started.alone)

    def jobs() -> Iterator[tuple[int, _Job]]:
        for i, message_id, outcome_of in translated:
            raw, receipt = items[i]
            facility, source = sources[i]
            outcome = outcome_of()
            create = _creator(raw, keys[i][1], facility, source, receipt, outcome, message_id)
            yield (
                i,
                _Job(create, facility, source.id, outcome, receipt.received_at, receipt.channel),
            )

    with pipeline.factory.begin() as session:
        writes = batch_writes(session)
        # SQLite: the messages' result UPDATEs at the commit, one executemany (decision 0133)
        writes.hold_results = at_once and writes.messages is None
        for i, key in keys.items():
            if key in known_ids:
                existing = session.get(InboundMessage, known_ids[key])
                assert existing is not None
                steps.audit_received(session, existing, items[i][1].received_at, duplicate=True)
                results[i] = result_of(existing, duplicate=True)
        stored: Iterable[tuple[int, _Job]] = jobs()
        if at_once and writes.messages is not None:  # PostgreSQL
            stored = list(stored)
            _read_rows(pipeline, session, [job for _, job in stored])
        alone.extend(
            _store_jobs(pipeline, session, writes, stored, results, savepoints=not at_once)
        )
        try:
            flush_batch_writes(session)  # a failure here fails the batch: each goes on its own
        except Exception as exc:
            if not writes.hold_results:
                raise
            # or a message's held result (SQLite): stored again, an UPDATE a message in its
            # savepoint, so that a refused one fails alone, as before decision 0133
            raise _Again("the batch's held rows", type(exc).__name__) from exc
    return results, alone


def _read_rows(pipeline: Pipeline, session: Session, jobs: list[_Job]) -> None:
    """PostgreSQL: lock the rows the batch's messages merge and read every row they store,
    and take the patient index's locks of their Patients, once for the batch
    (``read_batch_rows``, ``lock_batch``): each message's merge, save and patient index
    then take no lock and read no row of their own (decision 0101)."""
    merging: list[tuple[str, str]] = []
    others: list[tuple[str, str]] = []
    patients: list[tuple[list[dict[str, Any]], str]] = []
    for job in jobs:
        outcome = job.outcome
        if outcome.failed:
            continue
        for resource in outcome.resources:
            key = (resource["resourceType"], resource["id"])
            (merging if reads_stored(resource, outcome.policies) else others).append(key)
        found = [r for r in outcome.resources if r.get("resourceType") == "Patient"]
        if found:
            patients.append((found, job.facility.id))
    lock_batch(session, patients, rules_at(pipeline.consortium.patient_index.matching_rules))
    read_batch_rows(session, merging, others)


def _store_jobs(
    pipeline: Pipeline,
    session: Session,
    writes: BatchWrites,
    jobs: Iterable[tuple[int, _Job]],
    results: list[IngestResult | None],
    contexts: Mapping[int, contextvars.Context] | None = None,
    *,
    savepoints: bool = True,
) -> list[int]:
    """Store each job in a savepoint; the indexes of those rolled back. With ``contexts``
    (group commit, adapter/pipeline/group.py), job ``i``'s steps run in ``contexts[i]``: its
    audit events and log lines carry its own request's id and caller. ``savepoints=False``:
    no savepoint, the first job to fail raises ``_Again`` (the caller rolls back)."""
    failed: list[int] = []
    if not savepoints:
        for i, job in jobs:
            try:
                if contexts is not None:
                    message = contexts[i].run(_store_job, pipeline, session, job)
                else:
                    message = _store_job(pipeline, session, job)
            except Exception as exc:
                raise _Again(job.source_id, type(exc).__name__) from exc
            writes.forget()
            results[i] = result_of(message)
        return failed
    for i, job in jobs:
        mark = writes.mark()
        savepoint = session.begin_nested()
        try:
            if contexts is not None:
                message = contexts[i].run(_store_job, pipeline, session, job)
            else:
                message = _store_job(pipeline, session, job)
            savepoint.commit()
            writes.forget()
            results[i] = result_of(message)
        except Exception as exc:  # every failure goes the single-message way
            log.info(
                "bulk ingest: a message from %s goes on its own (%s)",
                job.source_id,
                type(exc).__name__,
            )
            # a failed ORM flush leaves the savepoint inactive but still to roll back (not
            # doing so failed the whole batch with PendingRollbackError at the next one)
            if session.get_nested_transaction() is savepoint:
                savepoint.rollback()  # with the audit events it queued (adapter/audit/writer.py)
            writes.rollback(mark)  # and the rows it left to the commit
            failed.append(i)
    return failed


def _store_job(pipeline: Pipeline, session: Session, job: _Job) -> InboundMessage:
    """One job's steps, as ``Pipeline._settle`` runs them (inside the caller's savepoint)."""
    message = job.open_message(session)
    steps.audit_translated(session, message, job.outcome, job.moment)
    if job.outcome.failed:
        steps.quarantine(session, message, job.outcome.issues, job.moment, channel=job.channel)
    else:
        work = pipeline._work(session, message, job)
        work.prepared = job.outcome.prepared  # from a translation worker, if one translated
        steps.store(work)
    return message


def _known(session: Session, keys: list[tuple[str, str]]) -> dict[tuple[str, str], InboundMessage]:
    """The messages already received with these (source, sha256): one query."""
    if not keys:
        return {}
    found = session.scalars(
        # grouped by source: a key lookup on both databases (adapter/store/keys.py)
        select(InboundMessage).where(
            keys_in(InboundMessage.source_system, InboundMessage.sha256, keys)
        )
    )
    return {(m.source_system, m.sha256): m for m in found}

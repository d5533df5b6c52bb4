"""The unit of work that stores: receive -> translate -> resolve identity -> merge with
stored -> save -> route -> enqueue -> audit (adapter/pipeline/steps.py names each step).

One transaction stores the inbound message, the resources (with history and search index
rows), the outbox rows and the message's status, so the sender's acknowledgement (HTTP 202,
MLLP AA) is only given for what is durably stored. A document that cannot be translated is
stored on its own, quarantined with its located issues, in a transaction of its own: bad
input is never lost and never blocks what comes after it. Ingest, reprocess and an oversize
refusal settle a message through one path (``Pipeline._settle``). Translating needs no
database: adapter/pipeline/translator.py.

About 400 lines on purpose: the ways to settle a message (ingest with its race retries,
refuse, reprocess, a database refusal, a bug) share private helpers that are easiest to
check side by side; each storing concern is a step in steps.py, not code here.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import random
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from adapter.consortium import Consortium, Facility, SourceSystem
from adapter.errors import AdapterError, Issue, NotFoundError, UnknownSourceError
from adapter.input_limits import DEFAULT_LIMITS, InputLimits
from adapter.mapping.loader import MappingSet
from adapter.oversize import Oversize, is_prefix_only, oversize_issue
from adapter.pipeline import bulk, steps
from adapter.pipeline.bulk import Label
from adapter.pipeline.group import GroupCommit
from adapter.pipeline.on_receipt import ReceiptCommit
from adapter.pipeline.receipt import Channel, Receipt
from adapter.pipeline.results import (
    IngestResult,
    result_of,
)
from adapter.pipeline.translation_pool import TranslationPool, default_workers
from adapter.pipeline.translator import Outcome, Translator, internal_error
from adapter.recognition.catalogue import Catalogue
from adapter.recognition.marks import ResultMarks
from adapter.store import create_message, find_message, get_message, read_only, verified_raw
from adapter.store.models import InboundMessage
from adapter.store.refusals import describe, is_refusal, is_unique_violation, locate_refusal

log = logging.getLogger(__name__)

_RACE_RETRIES = 3  # a concurrent insert of the same new resource
_DEADLOCK_RETRIES = 8  # a deadlock broken by PostgreSQL: pauses of 0.05 s doubling, at most 2 s
_DEADLOCK_PAUSE = 0.05

OpenMessage = Callable[[Session], InboundMessage]


@dataclass(slots=True)
class _Job:
    """One message to settle: how to get its row (create it, or load it again), and what
    translating it gave."""

    open_message: OpenMessage
    facility: Facility
    source_id: str
    outcome: Outcome
    moment: datetime
    channel: str  # how it came in (the audit event's); reprocess for a reprocess


class _LostRace(Exception):
    """Another transaction took a unique key first (the same bytes, or a new resource two
    messages made in the same instant): the caller retries, answers the duplicate, or keeps
    the message refused."""

    def __init__(self, error: IntegrityError, tried: list[dict[str, Any]]) -> None:
        super().__init__(str(error))
        self.error = error
        self.tried = tried


class Pipeline:
    """Translates and stores documents from the consortium's configured source systems."""

    def __init__(
        self,
        consortium: Consortium,
        factory: sessionmaker[Session],
        *,
        mappings_dir: Path,
        max_bytes: int,
        default_timezone: str,
        keep_bytes: int = 65536,
        original_inline_max_bytes: int = 256 * 1024,
        originals_base: str = "",
        limits: InputLimits = DEFAULT_LIMITS,
        recognition: Catalogue | None = None,
    ) -> None:
        self.translator = Translator(
            consortium,
            mappings_dir=mappings_dir,
            max_bytes=max_bytes,
            default_timezone=default_timezone,
            original_inline_max_bytes=original_inline_max_bytes,
            originals_base=originals_base,
            limits=limits,
        )
        self._setup(self.translator, factory, keep_bytes, recognition)

    @classmethod
    def of(
        cls,
        translator: Translator,
        factory: sessionmaker[Session],
        *,
        keep_bytes: int = 65536,
        recognition: Catalogue | None = None,
    ) -> Pipeline:
        """A pipeline storing with ``factory`` what ``translator`` translates (its loaded
        mapping sets shared, e.g. by tests that store into a database per test)."""
        pipeline = cls.__new__(cls)
        pipeline._setup(translator, factory, keep_bytes, recognition)
        return pipeline

    def _setup(
        self,
        translator: Translator,
        factory: sessionmaker[Session],
        keep_bytes: int,
        recognition: Catalogue | None,
    ) -> None:
        self.translator = translator
        self.factory = factory
        # the receiving limit (a test may lower it for one pipeline sharing a translator)
        self.max_bytes = translator.max_bytes
        # what is kept of a refused oversize document (never more than the limit)
        self.keep_bytes = min(keep_bytes, translator.max_bytes)
        # the recognition catalogue's marks on stored results (adapter/recognition/marks.py)
        self.marks = (
            ResultMarks(recognition, translator.consortium)
            if recognition is not None and recognition.mark_results
            else None
        )
        # worker processes translating for bulk ingest, inside translation_workers()
        self.translation_pool: TranslationPool | None = None
        # concurrent single documents (POST /ingest, MLLP) share transactions (group.py)
        self.group_commit = GroupCommit(self)
        # documents answered on receipt, kept as received for the drain (on_receipt.py)
        self.receipts = ReceiptCommit(self)

    # -- the translator's, for the callers that hold a pipeline ------------------------------
    @property
    def consortium(self) -> Consortium:
        return self.translator.consortium

    @property
    def timezone(self) -> ZoneInfo:
        return self.translator.timezone

    @property
    def mappings_dir(self) -> Path:
        return self.translator.mappings_dir

    @mappings_dir.setter
    def mappings_dir(self, folder: Path) -> None:
        self.translator.mappings_dir = folder

    def mapping_set(self, facility: Facility, source: SourceSystem) -> MappingSet:
        return self.translator.mapping_set(facility, source)

    def load_all_mappings(self) -> None:
        self.translator.load_all_mappings()

    def loaded_sources(self) -> list[str]:
        return self.translator.loaded_sources()

    def reload_mappings(self) -> None:
        self.translator.reload_mappings()

    def translate(self, raw: bytes, source_system: str) -> Outcome:
        return self.translator.translate(raw, source_system)

    def original_url(self, message_id: str | None) -> str | None:
        return self.translator.original_url(message_id)

    # -- receive -----------------------------------------------------------------------------
    def ingest(self, raw: bytes, receipt: Receipt) -> IngestResult:
        """Receive ``raw`` as ``receipt`` says (every way in builds one: receipt.py)."""
        if len(raw) > self.max_bytes:  # the callers stop reading before; this is the backstop
            oversize = Oversize(raw[: self.keep_bytes], len(raw))
            return self.refuse_oversize(oversize, receipt)
        facility, source = self.translator.source(receipt.source_system)
        digest = hashlib.sha256(raw).hexdigest()
        duplicate = self._duplicate(source.id, digest)
        if duplicate is not None:
            return duplicate
        return self._store_new(raw, receipt, facility, source, digest)

    def receive(self, raw: bytes, receipt: Receipt) -> IngestResult:
        """Keep ``raw`` as received, to be translated and stored by the drain
        (adapter/pipeline/drain.py); answered once kept (on_receipt.py)."""
        return self.receipts.receive(raw, receipt)

    def _store_new(
        self,
        raw: bytes,
        receipt: Receipt,
        facility: Facility,
        source: SourceSystem,
        digest: str,
        translated: tuple[str, Outcome] | None = None,
    ) -> IngestResult:
        """Store bytes not received before, retrying lost races; ``translated``: the
        message id and translation already made for the first attempt (group.py)."""
        moment = receipt.received_at
        # chosen before translating: a linked original names it
        message_id = translated[0] if translated is not None else str(uuid.uuid4())
        for attempt in itertools.count():
            if translated is not None and attempt == 0:
                outcome = translated[1]
            else:
                outcome = self.translator.translate_for(raw, facility, source, message_id)
            create = _creator(raw, digest, facility, source, receipt, outcome, message_id)
            job = _Job(create, facility, source.id, outcome, moment, receipt.channel)
            try:
                return self._settle(job)
            except (_LostRace, OperationalError) as exc:
                if isinstance(exc, OperationalError) and not _lost_race(exc):
                    raise
                duplicate = self._duplicate(source.id, digest)
                if duplicate is not None:
                    # the same bytes arrived twice at once: the other one won the unique key
                    return duplicate
                if not try_again(exc, attempt):
                    if isinstance(exc, OperationalError):
                        raise
                    return self._keep_refused(job, exc.tried, exc.error)
                # another message created the same new resource in the same instant, or
                # the database broke a deadlock by rolling this transaction back whole:
                # do it again
                log.info("retrying a message from %s after a concurrent write", source.id)
        raise AssertionError("unreachable")

    @contextmanager
    def translation_workers(self, workers: int | None = None) -> Iterator[None]:
        """Bulk ingest inside this block translates in ``workers`` processes (None: one per
        core beyond the first, at most 2; 0: none) while the store writes
        (adapter/pipeline/translation_pool.py); they stop at the end of the block."""
        count = default_workers() if workers is None else workers
        if count <= 0 or self.translation_pool is not None:
            yield
            return
        pool = TranslationPool(self.translator, count)
        self.translation_pool = pool
        try:
            yield
        finally:
            self.translation_pool = None
            pool.close()

    def ingest_many(
        self, items: Iterable[tuple[bytes, Receipt]], *, batch: int = 100
    ) -> Iterator[IngestResult]:
        """Ingest many documents, ``batch`` per transaction with a savepoint each (one bad
        document never costs the others their work: adapter/pipeline/bulk.py); one result
        per item, in order, as each batch is committed."""
        return bulk.ingest_many(self, items, batch=batch)

    def ingest_labelled(
        self, batches: Iterable[tuple[Label, list[tuple[bytes, Receipt]]]]
    ) -> Iterator[tuple[Label, list[IngestResult]]]:
        """Ingest each batch in one transaction with a savepoint each; each batch's label
        with its results, in order, as each is committed. With translation workers the
        next batch is taken and translated while this one is stored
        (adapter/pipeline/bulk.py ``ingest_batches``)."""
        return bulk.ingest_labelled(self, batches)

    def refuse_oversize(self, oversize: Oversize, receipt: Receipt) -> IngestResult:
        """Keep a document over the limit as a quarantined message holding only its first
        bytes and its size (see adapter/oversize.py)."""
        prefix = oversize.prefix[: self.keep_bytes]
        issue = oversize_issue(oversize, self.max_bytes, len(prefix))
        return self.refuse(prefix, receipt, issue, size=oversize.size)

    def refuse(
        self, raw: bytes, receipt: Receipt, issue: Issue, *, size: int | None = None
    ) -> IngestResult:
        """Keep bytes that must not be translated (a document over the limit, an MLLP frame
        cut off in transit) as a quarantined message with the issue that says why; ``size``
        when ``raw`` holds only the first bytes of what was received."""
        facility, source = self.translator.source(receipt.source_system)
        moment = receipt.received_at
        digest = hashlib.sha256(raw).hexdigest()  # of the bytes kept, as for every message
        refused = Outcome.failure([issue], source.format)
        duplicate = self._duplicate(source.id, digest)
        if duplicate is not None:  # sent again: the same refusal
            return duplicate
        create = _creator(raw, digest, facility, source, receipt, refused)

        def create_with_size(session: Session) -> InboundMessage:
            message = create(session)
            if size is not None:
                message.size = size
            return message

        try:
            job = _Job(create_with_size, facility, source.id, refused, moment, receipt.channel)
            return self._settle(job)
        except _LostRace as race:
            duplicate = self._duplicate(source.id, digest)
            if duplicate is None:
                raise race.error from None
            return duplicate

    def reprocess(self, message_id: str, *, now: datetime | None = None) -> IngestResult:
        """Translate a stored message again (after a mapping fix) with the current mappings."""
        moment = now or datetime.now(UTC)
        with self.factory() as session:
            message = get_message(session, message_id)
            if message is None:
                raise NotFoundError(f"no message {message_id}")
            raw, source_id = verified_raw(message), message.source_system
            if is_prefix_only(message.size, raw):
                # only the first bytes of an oversize document were kept: nothing to redo
                return result_of(message)
        found = self.consortium.source(source_id)
        if found is None:
            raise UnknownSourceError(f"source system {source_id!r} is no longer configured")
        facility, source = found
        # pick up mapping fixes; a mapping that does not load raises here (409 over HTTP) and
        # leaves both the message and the mappings in use for new messages as they were
        self.translator.reload_source(facility, source)
        outcome = self.translator.translate_for(raw, facility, source, message_id)

        def reopen(session: Session) -> InboundMessage:
            stored = get_message(session, message_id)
            assert stored is not None
            stored.detected_format = outcome.format
            stored.encoding = outcome.encoding
            steps.audit_reprocess(session, stored, moment)
            return stored

        try:
            return self._settle(
                _Job(reopen, facility, source.id, outcome, moment, Channel.REPROCESS)
            )
        except _LostRace as race:
            raise race.error from None

    # -- settle: the one path from a translation to a stored or quarantined message ----------
    def _settle(self, job: _Job) -> IngestResult:
        """Store the message's resources through the named steps, or quarantine it; a bug or
        a value the database refuses quarantines it too, in a transaction of its own."""
        work: steps.Work | None = None
        try:
            with self.factory.begin() as session:
                message = job.open_message(session)
                steps.audit_translated(session, message, job.outcome, job.moment)
                if job.outcome.failed:
                    steps.quarantine(
                        session, message, job.outcome.issues, job.moment, channel=job.channel
                    )
                else:
                    work = self._work(session, message, job)
                    steps.store(work)
                return result_of(message)
        except IntegrityError as exc:
            tried = work.resources if work is not None else job.outcome.resources
            if is_unique_violation(exc):
                raise _LostRace(exc, tried) from exc
            return self._keep_refused(job, tried, exc)
        except SQLAlchemyError as exc:
            if not is_refusal(exc):
                raise  # the database is unavailable: nothing can be kept, send again
            tried = work.resources if work is not None else job.outcome.resources
            return self._keep_refused(job, tried, exc)
        except AdapterError:
            raise
        except Exception as exc:  # a bug while storing must not lose the message either
            log.exception("unexpected error storing a message from %s", job.source_id)
            return self._quarantine_apart(job, [internal_error("storing", exc)])

    def _keep_refused(
        self, job: _Job, tried: list[dict[str, Any]], failure: SQLAlchemyError
    ) -> IngestResult:
        """The database refused what the message produced: keep the message, quarantined,
        with the resource and element the database refused (``tried``: the resources as
        they were to be stored)."""
        log.warning("message from %s refused by the database: %s", job.source_id, describe(failure))
        with self.factory.begin() as session:
            message = job.open_message(session)
            refusal = locate_refusal(
                session,
                tried,
                failure,
                message_id=message.id,
                now=job.moment,
                facility_id=job.facility.id,
                zone=self.timezone,
            )
            issue = Issue(
                "error",
                "processing",
                f"{refusal.text()}; the message is kept and can be reprocessed once fixed",
                location=refusal.resource,
                expression=refusal.expression,
            )
            issues = [issue, *job.outcome.issues]
            steps.quarantine(session, message, issues, job.moment, channel=job.channel)
            return result_of(message)

    def _quarantine_apart(self, job: _Job, issues: list[Issue]) -> IngestResult:
        with self.factory.begin() as session:
            message = job.open_message(session)
            steps.quarantine(session, message, issues, job.moment, channel=job.channel)
            return result_of(message)

    def _work(self, session: Session, message: InboundMessage, job: _Job) -> steps.Work:
        return steps.Work(
            session=session,
            message=message,
            consortium=self.consortium,
            facility=job.facility,
            zone=self.timezone,
            moment=job.moment,
            resources=list(job.outcome.resources),
            policies=job.outcome.policies,
            origins=job.outcome.origins,
            issues=list(job.outcome.issues),
            channel=job.channel,
            mapping=job.outcome.mapping_set,
            marks=self.marks,
        )

    def _duplicate(self, source_id: str, digest: str) -> IngestResult | None:
        # the usual answer (never received) from a read that takes no write lock on SQLite:
        # with BEGIN IMMEDIATE every request's lookup queued behind the other requests'
        # store transactions (decision 0044); a duplicate is looked up again below, in the
        # transaction that writes its audit record
        with self.factory() as session:
            if find_message(read_only(session), source_id, digest) is None:
                return None
        with self.factory() as session:
            existing = find_message(session, source_id, digest)
            if existing is None:
                return None
            steps.audit_received(session, existing, datetime.now(UTC), duplicate=True)
            session.commit()  # the answer is given only once its audit record is kept
            return result_of(existing, duplicate=True)


def _creator(
    raw: bytes,
    digest: str,
    facility: Facility,
    source: SourceSystem,
    receipt: Receipt,
    outcome: Outcome,
    message_id: str | None = None,
) -> OpenMessage:
    """Receive: the inbound message row, status ``received`` until it is settled, with how
    it came in (channel, peer, content type, when)."""

    def create(session: Session) -> InboundMessage:
        message = create_message(
            session,
            message_id=message_id,
            source_system=source.id,
            facility_id=facility.id,
            raw=raw,
            content_type=receipt.content_type,
            sha256=digest,
            detected_format=outcome.format,
            encoding=outcome.encoding,
            received_at=receipt.received_at,
            channel=receipt.channel,
            peer=receipt.peer,
        )
        steps.audit_received(session, message, receipt.received_at)
        return message

    return create


def try_again(exc: _LostRace | OperationalError, attempt: int) -> bool:
    """Whether a message whose transaction lost a race on try ``attempt`` (from 0) is tried
    again. A concurrent insert of the same new resource: at once, ``_RACE_RETRIES`` times. A
    deadlock or serialization conflict PostgreSQL broke by rolling this transaction back:
    ``_DEADLOCK_RETRIES`` times, after a pause that doubles. The other side of a deadlock
    is often a bulk batch (another ``adapter sync --jobs`` share, decision 0061) that holds
    its locks until its commit, a second or so later: tried again at once, a message met
    the same batch and was chosen as the victim again, four times in a row under load."""
    if isinstance(exc, _LostRace):
        return attempt < _RACE_RETRIES
    if attempt >= _DEADLOCK_RETRIES:
        return False
    # jittered, so that two victims of one deadlock do not meet again
    time.sleep(random.uniform(0.5, 1.0) * min(_DEADLOCK_PAUSE * 2**attempt, 2.0))
    return True


def _lost_race(exc: OperationalError) -> bool:
    """PostgreSQL rolled the transaction back to break a deadlock (40P01) or a
    serialization conflict (40001): doing it again is the documented remedy."""
    return getattr(exc.orig, "sqlstate", None) in ("40P01", "40001")

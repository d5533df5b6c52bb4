"""Answering on receipt (``POST /ingest`` with ``Prefer: respond-async``, or a source with
``answer: on-receipt``): the raw bytes are kept as an inbound message with status
``received`` and its ``message.received`` audit event, the sender is answered once that is
committed, and the drain (adapter/pipeline/drain.py) translates and stores it later, in
batches (docs/decisions/0063-answer-on-receipt.md). HL7 v2's enhanced-mode commit
acknowledgement and FHIR's asynchronous request pattern answer the same way.

Concurrent callers' receipts share one transaction, as group commit shares stores
(adapter/pipeline/group.py): the first caller to find nobody committing leads, takes what
is queued (at most ``max_group``, itself first) and commits it; every caller is handed its
own result only after that commit; then the oldest caller still queued leads the next
group. A receipt is small (one row, one audit event), so there is no arrival wait.

Each caller gets what its document deserves, as on the synchronous path:

* an unknown source raises (HTTP 400), a document over the size limit is refused at once
  (``Pipeline.refuse_oversize``: quarantined, its first bytes kept);
* bytes already received from the source (the raw-bytes digest) are answered with the
  earlier message (its status, whatever it is now: ``received`` until drained), with the
  duplicate's audit event;
* the second of identical bytes in one group, and every document of a group whose
  transaction failed, is received again alone by its own caller: a failure there is its
  caller's (HTTP 5xx), and nothing is answered that was not committed.

The audit events run in each caller's ``contextvars`` context: they carry its request id.
"""

from __future__ import annotations

import contextvars
import hashlib
import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from adapter.pipeline import bulk, steps
from adapter.pipeline.group import hand_on
from adapter.pipeline.receipt import Receipt
from adapter.pipeline.results import IngestResult, result_of
from adapter.store import create_message
from adapter.store.driver_select import driver_rows
from adapter.store.messages import insert_held_messages
from adapter.store.models import InboundMessage

if TYPE_CHECKING:
    from adapter.consortium import Facility, SourceSystem
    from adapter.pipeline.ingest import Pipeline

log = logging.getLogger(__name__)

DEFAULT_MAX_GROUP = 64  # receipts per transaction at most


@dataclass(eq=False, slots=True)
class _Pending:
    """One caller's document waiting for its receipt's transaction."""

    raw: bytes
    receipt: Receipt
    facility: Facility
    source: SourceSystem
    key: tuple[str, str]  # (source, sha256)
    context: contextvars.Context
    woken: threading.Event = field(default_factory=threading.Event)
    result: IngestResult | None = None  # set only once its transaction committed
    lead: bool = False


class ReceiptCommit:
    """Keeps concurrent callers' documents as received, in shared transactions."""

    def __init__(self, pipeline: Pipeline, max_group: int = DEFAULT_MAX_GROUP) -> None:
        self.pipeline = pipeline
        self.max_group = max(1, max_group)
        self._lock = threading.Lock()
        self._queue: deque[_Pending] = deque()
        self._leading = False
        # called after every commit that kept a new document (the drain's wake-up)
        self.on_received: Callable[[], None] | None = None
        self.groups = 0  # transactions committed (for tests and the benchmark)
        self.received = 0  # new documents kept by them

    def receive(self, raw: bytes, receipt: Receipt) -> IngestResult:
        """Keep ``raw`` as received (or answer the earlier message with the same bytes);
        returns once committed: status ``received`` for a new document."""
        pipeline = self.pipeline
        if len(raw) > pipeline.max_bytes:  # the callers stop reading before; the backstop
            from adapter.oversize import Oversize

            return pipeline.refuse_oversize(Oversize(raw[: pipeline.keep_bytes], len(raw)), receipt)
        facility, source = pipeline.translator.source(receipt.source_system)  # unknown: raises
        key = (source.id, hashlib.sha256(raw).hexdigest())
        pending = _Pending(raw, receipt, facility, source, key, contextvars.copy_context())
        with self._lock:
            self._queue.append(pending)
            if not self._leading:
                self._leading = pending.lead = True
        if not pending.lead:
            pending.woken.wait()  # the group's result, or the lead of the next group
        if pending.lead:
            self._lead(pending)
        if pending.result is None:  # the same bytes twice in a group, or the group failed
            self._commit([pending])  # alone: a failure here is this caller's
        assert pending.result is not None
        return pending.result

    def _lead(self, own: _Pending) -> None:
        with self._lock:
            group = [self._queue.popleft() for _ in range(min(self.max_group, len(self._queue)))]
        assert group[0] is own
        try:
            self._commit(group)
        except Exception as exc:  # each again alone: its own failure is its caller's
            log.warning("receipt: a group of %d failed (%s)", len(group), type(exc).__name__)
            for pending in group:
                pending.result = None
        finally:
            with self._lock:
                self._leading = hand_on(self._queue, group)

    def _commit(self, group: list[_Pending]) -> None:
        """One transaction keeping ``group``; results are set only after its commit."""
        results: list[IngestResult | None] = [None] * len(group)
        try:
            with self.pipeline.factory.begin() as session:
                known = _known(session, list({p.key for p in group}))
                taken: set[tuple[str, str]] = set()
                kept: list[InboundMessage] = []
                for i, pending in enumerate(group):
                    existing = known.get(pending.key)
                    if existing is not None:
                        pending.context.run(
                            steps.audit_received,
                            session,
                            existing,
                            pending.receipt.received_at,
                            duplicate=True,
                        )
                        results[i] = result_of(existing, duplicate=True)
                    elif pending.key not in taken:  # the second of identical bytes: alone
                        taken.add(pending.key)
                        message = pending.context.run(_keep, session, pending)
                        kept.append(message)
                        results[i] = result_of(message)
                # the group's rows in one statement (one round trip on PostgreSQL), before
                # the commit writes the audit records that refer to them (decision 0116)
                insert_held_messages(session, kept)
        except IntegrityError:
            duplicate = self._duplicate(group[0]) if len(group) == 1 else None
            if duplicate is None:
                raise
            # alone, and the same bytes kept meanwhile by another process: its duplicate
            results = [duplicate]
        for pending, result in zip(group, results, strict=True):
            pending.result = result
        self.groups += 1
        new = sum(1 for r in results if r is not None and not r.duplicate)
        self.received += new
        if new and self.on_received is not None:
            self.on_received()

    def _duplicate(self, pending: _Pending) -> IngestResult | None:
        with self.pipeline.factory.begin() as session:
            existing = bulk._known(session, [pending.key]).get(pending.key)
            if existing is None:
                return None
            pending.context.run(
                steps.audit_received, session, existing, pending.receipt.received_at, duplicate=True
            )
            return result_of(existing, duplicate=True)


# the keys already received, by source: one prepared statement whatever the group's size
_message = InboundMessage.__table__
_KNOWN_KEYS = select(_message.c.sha256).where(
    _message.c.source_system == bindparam("source"),
    _message.c.sha256.in_(bindparam("digests", expanding=True)),
)


# SQLite: one key a statement, on the driver (decision 0129)
_KNOWN_KEY = select(_message.c.sha256).where(
    _message.c.source_system == bindparam("source"),
    _message.c.sha256 == bindparam("digest"),
)


def _known(session: Session, keys: list[tuple[str, str]]) -> dict[tuple[str, str], InboundMessage]:
    """``bulk._known``, for the receipts: the keys found by a plain read first (almost
    always none), the messages loaded only for those (decision 0107)."""
    found = _found_on_driver(session, keys)
    if found is None:
        by_source: dict[str, list[str]] = {}
        for source, digest in keys:
            by_source.setdefault(source, []).append(digest)
        found = [
            (source, digest)
            for source, digests in by_source.items()
            for digest in session.scalars(_KNOWN_KEYS, {"source": source, "digests": digests})
        ]
    return bulk._known(session, found) if found else {}


def _found_on_driver(session: Session, keys: list[tuple[str, str]]) -> list[tuple[str, str]] | None:
    """Those of ``keys`` already received, read on SQLite's driver one key a statement (a
    unique-key lookup each: a group holds a few; SQLAlchemy's execution of the one
    expanding statement cost more than SQLite's work for all of them, decision 0129);
    None where ``driver_rows`` does not apply (PostgreSQL: one round trip, as before).
    Read before anything is added to the session: nothing to flush."""
    if session.get_bind().dialect.name != "sqlite":  # psycopg's driver too (0141): a trip a key
        return None
    found: list[tuple[str, str]] = []
    for source, digest in keys:
        params = {"source": source, "digest": digest}
        rows = driver_rows(session, _KNOWN_KEY, params, flush=False)
        if rows is None:
            return None
        if rows:
            found.append((source, digest))
    return found


def _keep(session: Session, pending: _Pending) -> InboundMessage:
    """The inbound message row as received (format and encoding are the drain's to say)
    and its ``message.received`` audit event."""
    receipt = pending.receipt
    message = create_message(
        session,
        source_system=pending.source.id,
        facility_id=pending.facility.id,
        raw=pending.raw,
        content_type=receipt.content_type,
        sha256=pending.key[1],
        detected_format=None,
        encoding=None,
        received_at=receipt.received_at,
        channel=receipt.channel,
        peer=receipt.peer,
        at_once=True,  # the row as it stays until drained: no unit of work (decision 0107)
        insert=False,  # with the group's others, by ``_commit``
    )
    steps.audit_received(session, message, receipt.received_at)
    return message

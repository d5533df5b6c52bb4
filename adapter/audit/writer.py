"""The audit log's writer: every recorded event becomes an audit_record row in the
transaction it was recorded in.

``record(event, session=s)`` queues the event on ``s``; just before ``s`` commits, the
queued events are chained and inserted (``before_commit``), so they are kept exactly when
the work they describe is kept, and the chain lock is held only for the commit itself.
On PostgreSQL the lock is a transaction-scoped advisory lock, scoped to the adapter's schema
(adapter/store/advisory.py; no UPDATE right on any audit table is needed: the service's user
may only INSERT and SELECT them, docs/audit.md);
on SQLite every writing transaction already holds the database's write lock.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from datetime import datetime
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import bindparam, insert, select, text
from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session

from adapter.audit import context
from adapter.audit.chain import GENESIS, canonical, chain_hash, links_of
from adapter.audit.events import AuditEvent
from adapter.fhir.dates import format_instant
from adapter.store import advisory
from adapter.store.audit_log import IS_RECEIPT, AuditLink, AuditRecord
from adapter.store.audit_reference import link_element, pack_links
from adapter.store.bound import bind_of
from adapter.store.fast_insert import insert_rows
from adapter.store.types import UuidText

log = logging.getLogger(__name__)

PENDING = "adapter.audit.pending"
MARKS = "adapter.audit.savepoint-marks"  # id(savepoint) -> events queued before it
LOCK_KEY = 0x41554454  # pg_advisory_xact_lock key of the chain ("AUDT")

# the correlation id each recent message's receipt was recorded with, per database (one
# process may write to several stores, e.g. the tests, and message ids are only unique in one)
_correlations: WeakKeyDictionary[Any, OrderedDict[str, str]] = WeakKeyDictionary()
_correlations_lock = threading.Lock()
_CACHE = 10_000
_RECORD = AuditRecord.__table__
_LINK = AuditLink.__table__

_enabled = True  # bench/bench_audit.py measures ingest without the writer


def set_enabled(on: bool) -> None:
    """For the benchmark only: with ``False`` the writer keeps nothing."""
    global _enabled
    _enabled = on


def sink(event: AuditEvent, session: Session | None) -> None:
    """The writer's side of ``audit.record``: queue ``event`` on ``session``."""
    if not _enabled:
        return
    if session is None:
        log.error("audit event %s recorded without a transaction: not kept", event.action)
        return
    session.info.setdefault(PENDING, []).append(_body(event, context.current()))


# the last instant formatted and its text: a message's events share its moment (0148)
_formatted: tuple[datetime | None, str] = (None, "")


def _instant(at: datetime) -> str:
    """``format_instant(at)``, the text of the instant before it given again: equal instants
    (whatever their zones) have one UTC text."""
    global _formatted
    last, text = _formatted  # one tuple, read and replaced whole (threads)
    if last is None or last != at:
        text = format_instant(at)
        _formatted = (at, text)
    return text


def _body(event: AuditEvent, caller: context.Caller | None) -> dict[str, Any]:
    """What the record says, resolved now (the caller is bound to this thread now)."""
    return {
        "recorded": _instant(event.at),
        "action": event.action,
        "outcome": event.outcome,
        "actor": event.actor,
        "client": event.client if event.client is not None else caller and caller.client,
        "facility": event.facility if event.facility is not None else caller and caller.facility,
        "address": event.address if event.address is not None else caller and caller.address,
        "channel": event.channel if event.channel is not None else caller and caller.channel,
        "request": caller.request_id if caller else None,
        "correlation": event.correlation_id,
        "message": event.message_id,
        "subject": event.subject,
        "entities": list(dict.fromkeys(event.entities)),
        "patients": list(dict.fromkeys(event.patients)),
        "detail": dict(event.detail),
    }


def write(session: Session, bodies: list[dict[str, Any]]) -> None:
    """Chain and insert ``bodies`` after the log's last record (under the chain lock).

    The correlation ids are looked up before the lock is taken (one read for the batch):
    every writer of every process waits on that lock, and a delivery worker's batch names
    messages its process never received (decision 0040)."""
    _prefetch_correlations(session, bodies)
    batch: dict[str, str] = {}  # message -> correlation, for receipts in this batch
    for body in bodies:
        body["correlation"] = _correlation(session, body, batch)
    postgresql = session.get_bind().dialect.name == "postgresql"
    if postgresql:
        advisory.lock(session, LOCK_KEY)
    head = session.execute(
        select(AuditRecord.seq, AuditRecord.hash).order_by(AuditRecord.seq.desc()).limit(1)
    ).first()
    seq, prev = (head[0], head[1]) if head is not None else (0, GENESIS)
    rows: list[dict[str, Any]] = []
    links: list[dict[str, Any]] = []
    for body in bodies:
        seq += 1
        text_body = canonical(body)
        digest = chain_hash(prev, text_body)
        row = row_of(seq, body, text_body, prev, digest)
        implied = sorted(links_of(body))
        if postgresql:  # one value on the record's row (migration 0048, decision 0119)
            elements = sorted(link_element(k, r) for k, r in implied)
            row["links"] = pack_links(elements) if elements else None
        else:
            links.extend({"seq": seq, "kind": k, "reference": r} for k, r in implied)
        rows.append(row)
        prev = digest
    if postgresql:
        # Core, not the ORM's bulk insert: the ORM splits the rows into one INSERT per run
        # of rows with the same NULL columns, and `links` is NULL on every other record
        session.execute(insert(AuditRecord.__table__), rows)
    else:  # one executemany of tuples, without the ORM's work per row (decision 0050, amended)
        insert_rows(session, _RECORD, rows)
        if links:  # SQLite's audit_link: executemany is one prepared loop
            insert_rows(session, _LINK, links)


def row_of(
    seq: int, body: dict[str, Any], text_body: str, prev: str, digest: str
) -> dict[str, Any]:
    """The audit_record row of ``body``: the indexed columns are copies of body fields."""
    return {
        "seq": seq,
        "recorded": datetime.fromisoformat(body["recorded"]),
        "action": body["action"],
        "outcome": body["outcome"],
        "actor": body["actor"][:160],
        "client": _clip(body.get("client"), 160),
        "facility": _clip(body.get("facility"), 64),
        "address": _clip(body.get("address"), 255),
        "channel": _clip(body.get("channel"), 16),
        "correlation_id": _clip(body.get("correlation"), 64),
        "request_id": _clip(body.get("request"), 64),
        "message_id": _clip(body.get("message"), 36),
        "body": text_body,
        "prev_hash": prev,
        "hash": digest,
    }


def _clip(value: Any, size: int) -> str | None:
    return None if value is None else str(value)[:size]


def _correlation(session: Session, body: dict[str, Any], batch: dict[str, str]) -> str | None:
    """One correlation id for every record of one message: the one its receipt got (the
    request's X-Request-Id, else the message id); other events keep the request's."""
    if body.get("correlation"):
        return body["correlation"]
    message = body.get("message")
    if message is None:
        return body.get("request")
    if body["action"] == "message.received":
        found = body.get("request") or message
        batch[message] = found
        _remember(session, message, found)
        return found
    found = batch.get(message) or _recall(session, message)
    if found is None:
        # received before the audit log existed: the message id
        found = _receipt_correlations(session, [message]).get(message) or message
        _remember(session, message, found)
    return found


# The receipts' partial index, its condition (IS_RECEIPT) written as the same literal. Named
# on SQLite: without table statistics (a SQLite store has none unless someone runs ANALYZE)
# it read every receipt's entry of (action, recorded) instead (decision 0072)
_RECEIPTS = text(
    "SELECT message_id, correlation_id FROM audit_record{hint} "
    f"WHERE message_id IN :messages AND {IS_RECEIPT.text} ORDER BY seq"
)
_HINT = " INDEXED BY ix_audit_record_message_id"


def _receipt_correlations(session: Session, messages: list[str]) -> dict[str, str | None]:
    """The correlation id the first receipt of each of ``messages`` was recorded with, for
    those that have a receipt."""
    sqlite = session.get_bind().dialect.name == "sqlite"
    # the ids bound and read as the columns store them (16 bytes: UuidText, decisions 0081
    # and 0082)
    query = (
        text(_RECEIPTS.text.format(hint=_HINT if sqlite else ""))
        .bindparams(bindparam("messages", expanding=True, type_=UuidText()))
        .columns(message_id=UuidText(), correlation_id=UuidText(64))
    )
    found: dict[str, str | None] = {}
    for message, correlation in session.execute(query, {"messages": messages}):
        found.setdefault(message, correlation)
    return found


def _prefetch_correlations(session: Session, bodies: list[dict[str, Any]]) -> None:
    """One read for the receipts' correlation ids of the messages ``bodies`` name and this
    process has not seen (messages received in the same batch are left to ``_correlation``)."""
    received = {b.get("message") for b in bodies if b["action"] == "message.received"}
    wanted = {
        b["message"]
        for b in bodies
        if b.get("message") and not b.get("correlation") and b["message"] not in received
    }
    wanted = {m for m in wanted if _recall(session, m) is None}
    if not wanted:
        return
    found = _receipt_correlations(session, sorted(wanted))
    for message in wanted:  # a message received before the log existed: its own id
        _remember(session, message, found.get(message) or message)


def _remember(session: Session, message: str, correlation: str) -> None:
    with _correlations_lock:
        known = _correlations.setdefault(bind_of(session), OrderedDict())
        known[message] = correlation
        known.move_to_end(message)
        while len(known) > _CACHE:
            known.popitem(last=False)


def _recall(session: Session, message: str) -> str | None:
    with _correlations_lock:
        known = _correlations.get(bind_of(session))
        return None if known is None else known.get(message)


@sa_event.listens_for(Session, "before_commit")
def _flush_pending(session: Session) -> None:
    if session.in_nested_transaction():
        # a savepoint is released (bulk ingest: one per message): the events wait for the
        # transaction's own commit, so the chain lock is taken once, for that commit only,
        # and not held from the first message of a batch to its end
        return
    bodies = session.info.pop(PENDING, None)
    if bodies:
        write(session, bodies)


@sa_event.listens_for(Session, "after_transaction_create")
def _mark_savepoint(session: Session, transaction: Any) -> None:
    """A savepoint begins: remember how many events were queued before it."""
    if transaction.nested:
        session.info.setdefault(MARKS, {})[id(transaction)] = len(session.info.get(PENDING, ()))


@sa_event.listens_for(Session, "after_rollback")
def _drop_pending(session: Session) -> None:
    """A rollback drops the events of the work it undoes: a savepoint's own (SQLAlchemy
    reports a savepoint's rollback here too, with the savepoint still current), or all."""
    savepoint = session.get_nested_transaction()
    if savepoint is not None:
        mark = session.info.get(MARKS, {}).pop(id(savepoint), None)
        pending = session.info.get(PENDING)
        if mark is not None and pending is not None:
            del pending[mark:]
        return
    session.info.pop(PENDING, None)
    session.info.pop(MARKS, None)


def record_now(factory: Any, event: AuditEvent, *, session: Session | None = None) -> None:
    """Record ``event`` in a transaction of its own (reads, CLI commands), committed
    before returning: the answer is given only once its record is kept.

    ``session``: the caller's session, which has only read so far (an API read or
    search). On PostgreSQL the record is written and committed there: one connection and
    one transaction per request instead of a second checkout, ping and BEGIN (bench
    figures in bench/README.md, bench_search). SQLite keeps a transaction of its own: a
    read transaction that starts writing must take the write lock late, and can fail
    where an IMMEDIATE one waits its turn."""
    from adapter.audit.events import record

    if session is not None and session.get_bind().dialect.name == "postgresql":
        record(event, session=session)
        session.commit()
        return
    with factory.begin() as own:
        record(event, session=own)

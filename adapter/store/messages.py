"""The inbound_message repository: every input as received, and what became of it."""

from __future__ import annotations

import hashlib
import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.orm import Session, configure_mappers, make_transient_to_detached
from sqlalchemy.orm.attributes import instance_state, set_committed_value

from adapter.errors import AlteredBytesError
from adapter.store.driver_select import execute_rows
from adapter.store.fast_insert import insert_rows
from adapter.store.loaded import loaded
from adapter.store.models import InboundMessage
from adapter.store.resources import held_writes

log = logging.getLogger(__name__)
_message = InboundMessage.__table__
_CONTENT_TYPE_CHARS = 255  # inbound_message.content_type
_PEER_CHARS = 255  # inbound_message.peer
_NO_VALUES: dict[str, Any] = dict.fromkeys(c.key for c in _message.c)
_MANAGER = InboundMessage._sa_class_manager  # makes instances as the ORM's loading does


def create_message(
    session: Session,
    *,
    source_system: str,
    facility_id: str | None,
    raw: bytes,
    content_type: str | None,
    sha256: str,
    detected_format: str | None,
    encoding: str | None,
    received_at: datetime,
    message_id: str | None = None,
    channel: str | None = None,
    peer: str | None = None,
    at_once: bool = False,
    insert: bool = True,
) -> InboundMessage:
    """Insert a message with status ``received`` (flushed, so its id can be referenced).

    ``channel`` and ``peer`` say how it came in (adapter/pipeline/receipt.py makes the peer
    safe to list). The same bytes from the same source violate the unique (source_system, sha256)
    constraint: look them up with ``find_message`` first. ``at_once``: one INSERT now,
    without the ORM's unit of work (the receipts: the row is final as inserted; decision
    0107); the instance is as if loaded. ``insert=False`` (with ``at_once``): the caller
    inserts it with others, before anything refers to it (``insert_held_messages``: the
    receipts of a group in one statement, decision 0116).
    """
    values: dict[str, Any] = {
        "id": message_id or str(uuid.uuid4()),
        "source_system": source_system,
        "facility_id": facility_id,
        "received_at": received_at.astimezone(UTC),
        # a header, whatever its length: cut to the column (a refused row would lose the message)
        "content_type": content_type[:_CONTENT_TYPE_CHARS] if content_type else content_type,
        "detected_format": detected_format,
        "encoding": encoding,
        "channel": channel,
        "peer": peer[:_PEER_CHARS] if peer else None,
        "sha256": sha256,
        "raw": raw,
        "size": len(raw),
        "status": "received",
        "issues": [],
        "resources": [],
        "attempts": 0,
    }
    writes = held_writes(session)
    if writes is not None or at_once:  # one INSERT without the unit of work
        if (writes is None or writes.messages is None) and insert:  # SQLite, or at once: now
            # every column: the values given, None for the rest (as the unset attributes were)
            insert_rows(session, _message, [{**_NO_VALUES, **values}])
        # as if loaded: the row is there (decision 0050); its attributes set as a load sets
        # them, without the change events of InboundMessage(**values) (decision 0050,
        # amended 2026-12-05 bulkcpu): those would be committed at once below anyway.
        # PostgreSQL: the row is written by ``set_message_result``, in its final form
        # (decision 0089); nothing reads it from the database before
        configure_mappers()  # (at once, the first ORM use may be this one; a flag after)
        message = _MANAGER.new_instance()
        message.__dict__.update(values)
        make_transient_to_detached(message)
        session.add(message)
        if writes is not None and writes.messages is not None:
            writes.hold_message(message)
        return message
    message = InboundMessage(**values)
    session.add(message)
    session.flush()
    return message


def find_message(session: Session, source_system: str, sha256: str) -> InboundMessage | None:
    return session.scalars(
        select(InboundMessage).where(
            InboundMessage.source_system == source_system, InboundMessage.sha256 == sha256
        )
    ).first()


def get_message(session: Session, message_id: str) -> InboundMessage | None:
    return session.get(InboundMessage, message_id)


def verified_raw(message: InboundMessage) -> bytes:
    """The message's raw bytes, after checking them against the sha256 taken at receipt.

    Raises ``AlteredBytesError`` (and logs it at error level, with the id and digests only)
    when they were changed in the database: such bytes are never served or reprocessed.
    """
    raw = bytes(message.raw)
    actual = hashlib.sha256(raw).hexdigest()
    if actual != message.sha256:
        log.error(
            "message %s: stored bytes no longer match their sha256 (recorded %s, now %s); "
            "refusing to serve or reprocess them",
            message.id,
            message.sha256,
            actual,
        )
        raise AlteredBytesError(message.id)
    return raw


def list_messages(
    session: Session,
    status: str | None = None,
    limit: int = 50,
    offset: int = 0,
    *,
    facility: str | None = None,
) -> list[InboundMessage]:
    """Newest first (of one facility's sources when ``facility`` is given); the raw bytes
    are not loaded until touched."""
    query = select(InboundMessage)
    if status is not None:
        query = query.where(InboundMessage.status == status)
    if facility is not None:
        query = query.where(InboundMessage.facility_id == facility)
    query = query.order_by(InboundMessage.received_at.desc(), InboundMessage.id)
    return list(session.scalars(query.limit(limit).offset(offset)))


def count_messages(
    session: Session, status: str | None = None, *, facility: str | None = None
) -> int:
    query = select(func.count()).select_from(InboundMessage)
    if status is not None:
        query = query.where(InboundMessage.status == status)
    if facility is not None:
        query = query.where(InboundMessage.facility_id == facility)
    return session.execute(query).scalar_one()


def set_message_result(
    session: Session,
    message: InboundMessage,
    *,
    status: str,
    issues: list[dict[str, Any]],
    resources: list[str],
    now: datetime | None = None,
) -> None:
    """Record the outcome of (re)processing: status, issues, resources, one more attempt.

    In a bulk batch with one prebuilt UPDATE instead of the ORM's flush (decision 0050):
    the same row, without the unit of work (PostgreSQL inserts a new row once, with its
    result; a SQLite bulk batch stored at once holds the UPDATE to its commit: 0133)."""
    values = {
        "status": status,
        "issues": list(issues),
        "resources": list(resources),
        "processed_at": (now or datetime.now(UTC)).astimezone(UTC),
        "attempts": (loaded(message, "attempts") or 0) + 1,
    }
    message_id = loaded(message, "id")  # (adapter/store/loaded.py: read as loaded, 0155)
    writes = held_writes(session)
    if writes is None:
        for key, value in values.items():
            setattr(message, key, value)
        session.flush()
        return
    if writes.messages is not None and writes.messages.pop(message_id, None) is not None:
        # PostgreSQL, a message of this batch: its one INSERT, with the result (0089)
        committed_values(message, values)
        insert_held_messages(session, [message])
        return
    # the format and encoding too: the drain's reopened row (reopen_received) writes them
    # here, in this one UPDATE (decision 0076); a bulk row's are those it was inserted with
    values["detected_format"] = loaded(message, "detected_format")
    values["encoding"] = loaded(message, "encoding")
    if writes.messages is not None or writes.hold_results:
        # updated at the commit with the batch's others, one executemany; nothing in the
        # batch reads the row back (PostgreSQL: the drain's reopened row, one round trip for
        # all, decision 0116; SQLite: a bulk batch stored at once, decision 0133)
        writes.add_updates(_UPDATE_RESULT, [{"b_id": message_id, **values}])
    else:  # SQLite: on the driver (decision 0106), in the message's savepoint
        execute_rows(session, _UPDATE_RESULT, {"b_id": message_id, **values})
    committed_values(message, values)  # as written: the ORM has nothing left to flush


def committed_values(message: InboundMessage, values: dict[str, Any]) -> None:
    """``set_committed_value`` of each of ``values`` (the row's scalar columns), their keys
    committed at once: for such a column that function sets the value in the instance's
    dictionary and commits its key (``AttributeImpl.set_committed_value``); one
    ``InstanceState._commit`` of every key leaves the same state as one a key (each
    drops the key's committed and expired state, the instance's expired flag and the key's
    callable), without seven calls through the attribute's implementation (~11,000
    instructions each: decision 0155)."""
    message.__dict__.update(values)
    instance_state(message)._commit(message.__dict__, list(values))


def reopen_received(
    session: Session, message: InboundMessage, *, detected_format: str | None, encoding: str | None
) -> None:
    """A message kept on receipt, reopened by the drain with what its translation found.

    In a bulk batch the two values are written by the message's result UPDATE
    (``set_message_result``, in the same savepoint): set here as if committed, the row is
    not dirty, and no step's query autoflushes it in an UPDATE of its own (decision 0076).
    Outside a batch, the ORM's flush writes them."""
    if held_writes(session) is None:
        message.detected_format = detected_format
        message.encoding = encoding
        return
    set_committed_value(message, "detected_format", detected_format)
    set_committed_value(message, "encoding", encoding)


def insert_held_messages(session: Session, messages: list[InboundMessage]) -> None:
    """Insert the rows of messages a bulk batch held (``create_message``), as their
    attributes stand."""
    state = _message.c.keys()
    insert_rows(session, _message, [{k: m.__dict__.get(k) for k in state} for m in messages])


# SET takes the parameters' other keys (status, issues, resources, processed_at, attempts)
_UPDATE_RESULT = update(_message).where(_message.c.id == bindparam("b_id"))

"""``loaded`` (decision 0155) reads what the attribute reads: a message row's every column
as created, committed, expired (then loaded from the database by the descriptor), pending
and detached, on a real database."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.attributes import instance_state, set_committed_value

from adapter.store.loaded import loaded
from adapter.store.messages import committed_values, create_message, set_message_result
from adapter.store.models import InboundMessage

NOW = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
KEYS = [c.key for c in InboundMessage.__table__.c]


def _same(message: InboundMessage) -> dict[str, Any]:
    """Each column by ``loaded``, checked against the attribute (read after it)."""
    got = {key: loaded(message, key) for key in KEYS}
    assert got == {key: getattr(message, key) for key in KEYS}
    return got


def test_every_column_as_the_attribute_reads_it(session_factory: sessionmaker[Session]) -> None:
    with session_factory.begin() as session:
        message = create_message(
            session,
            source_system="std-hl7v2",
            facility_id="f1",
            raw=b"MSH|^~\\&|x",
            content_type="x-application/hl7-v2+er7",
            sha256="ab" * 32,
            detected_format="hl7v2",
            encoding="utf-8",
            received_at=NOW,
            channel="cli",
            peer="a.hl7",
        )
        created = _same(message)
        set_message_result(
            session, message, status="processed", issues=[], resources=["Patient/p"], now=NOW
        )
        assert _same(message)["status"] == "processed"
        session.expire(message)  # nothing in __dict__: the descriptor loads each value
        assert not {k for k in KEYS if k in message.__dict__}
        assert loaded(message, "status") == "processed"  # loaded through the attribute
        after = _same(message)
    assert after["id"] == created["id"] and after["attempts"] == 1
    assert after["resources"] == ["Patient/p"]
    detached = _same(message)  # expire_on_commit=False: still held, detached now
    assert detached == after
    pending = InboundMessage(id="m-pending", source_system="s", status="received")
    assert loaded(pending, "id") == "m-pending"
    assert loaded(pending, "peer") is None  # not set: the attribute's None
    assert "peer" not in pending.__dict__ or pending.__dict__["peer"] is None


def _state(message: InboundMessage) -> tuple[Any, ...]:
    state = instance_state(message)
    held = message.__dict__
    return (  # the columns set, which columns the instance holds, the state of its keys
        {k: held.get(k) for k in ("status", "issues", "resources", "processed_at", "attempts")},
        {k: held.get(k) for k in ("detected_format", "encoding", "peer")},
        set(held),
        dict(state.committed_state),
        set(state.expired_attributes),
        state.expired,
        dict(state.callables),
        state.modified,
    )


def test_committed_values_as_set_committed_value(
    session_factory: sessionmaker[Session],
) -> None:
    """``committed_values`` leaves each instance as ``set_committed_value`` a key leaves it:
    loaded, with a pending change of one of the keys, with expired keys; nothing to flush."""
    values = {
        "status": "warnings",
        "issues": [{"severity": "warning", "code": "x"}],
        "resources": ["Patient/p", "Observation/o"],
        "processed_at": NOW,
        "attempts": 1,
        "detected_format": "hl7v2",
        "encoding": "gb18030",
    }
    with session_factory.begin() as session:
        made = []
        for n in range(6):
            made.append(
                create_message(
                    session,
                    source_system="std-hl7v2",
                    facility_id="f1",
                    raw=b"MSH|%d" % n,
                    content_type=None,
                    sha256=f"{n:064x}",
                    detected_format="hl7v2",
                    encoding="utf-8",
                    received_at=NOW,
                )
            )
        session.flush()
        pairs = [(made[0], made[1]), (made[2], made[3]), (made[4], made[5])]
        for one, other in pairs[1:2]:  # a pending change of one of the keys
            one.status = other.status = "failed"
        for one, other in pairs[2:]:  # expired keys, and one not among the values
            session.expire(one, ["status", "attempts", "peer"])
            session.expire(other, ["status", "attempts", "peer"])
        for one, other in pairs:
            for key, value in values.items():
                set_committed_value(one, key, value)
            committed_values(other, dict(values))
            assert _state(one) == _state(other)
            assert not session.is_modified(one) and not session.is_modified(other)

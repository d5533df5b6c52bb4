"""``loaded`` (decision 0155) reads what the attribute reads: a message row's every column
as created, committed, expired (then loaded from the database by the descriptor), pending
and detached, on a real database."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from adapter.store.loaded import loaded
from adapter.store.messages import create_message, set_message_result
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

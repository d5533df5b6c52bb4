"""A paused destination (the console's 投递 page) is sent nothing: the breaker's admission
answers ``wait`` whatever its state, until the destination is resumed."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker

from adapter.delivery.breaker import BreakerConfig, admit
from adapter.store import outbox


def test_a_paused_destination_waits_until_resumed(session_factory: sessionmaker[Session]) -> None:
    now = datetime.now(UTC)
    config = BreakerConfig()
    with session_factory.begin() as session:
        assert admit(session, "d", worker="w", now=now, config=config) == "send"
        outbox.set_paused(session, "d", paused=True, by="county-operator", now=now)
    with session_factory.begin() as session:
        assert outbox.is_paused(session, "d")
        assert admit(session, "d", worker="w", now=now, config=config) == "wait"
        record = {r.destination: r for r in outbox.destination_records(session)}["d"]
        assert record.paused_by == "county-operator" and record.paused_at is not None
        outbox.set_paused(session, "d", paused=False, by="county-operator", now=now)
    with session_factory.begin() as session:
        assert not outbox.is_paused(session, "d")
        assert admit(session, "d", worker="w", now=now, config=config) == "send"

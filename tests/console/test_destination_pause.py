"""A paused destination (the console's 投递 page) is sent nothing: the breaker's admission
answers ``wait`` whatever its state, until the destination is resumed."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from adapter.cli import app
from adapter.delivery.breaker import BreakerConfig, admit
from adapter.settings import DEFAULT_CONSORTIUM, get_settings
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


def test_the_cli_pauses_and_resumes_a_destination(
    database_url: str, monkeypatch: pytest.MonkeyPatch, session_factory: sessionmaker[Session]
) -> None:
    monkeypatch.setenv("ADAPTER_DATABASE_URL", database_url)
    monkeypatch.setenv("ADAPTER_CONFIG", str(DEFAULT_CONSORTIUM))
    get_settings.cache_clear()
    try:
        paused = CliRunner().invoke(app, ["pause", "shiqiao-fhir"])
        assert paused.exit_code == 0, paused.output
        with session_factory() as session:
            assert outbox.is_paused(session, "shiqiao-fhir")
        resumed = CliRunner().invoke(app, ["resume", "shiqiao-fhir"])
        assert resumed.exit_code == 0 and "resumed" in resumed.output
        with session_factory() as session:
            assert not outbox.is_paused(session, "shiqiao-fhir")
        unknown = CliRunner().invoke(app, ["pause", "nowhere"])
        assert unknown.exit_code == 1 and "no destination nowhere" in unknown.output
    finally:
        get_settings.cache_clear()

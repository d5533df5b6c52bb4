"""``bind_of`` (decision 0155) answers what ``Session.get_bind()`` answers: the engine or
connection a session is bound to, and the same refusal for a session bound to nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine
from sqlalchemy.exc import UnboundExecutionError
from sqlalchemy.orm import Session, sessionmaker

from adapter.store.bound import bind_of
from adapter.store.models import InboundMessage


def test_the_bind_get_bind_gives(engine: Engine, session_factory: sessionmaker[Session]) -> None:
    with session_factory.begin() as session:
        assert bind_of(session) is session.get_bind() is engine
        assert bind_of(session).dialect.name == session.get_bind().dialect.name
        with session.begin_nested():  # a savepoint does not change it
            assert bind_of(session) is session.get_bind()
    # a session bound to a connection
    with engine.connect() as connection, Session(bind=connection) as session:
        assert bind_of(session) is session.get_bind() is connection
    # bound per table and to nothing: get_bind's own answer (here its refusal)
    with Session(binds={InboundMessage: engine}) as session:
        with pytest.raises(UnboundExecutionError):
            session.get_bind()
        with pytest.raises(UnboundExecutionError):
            bind_of(session)

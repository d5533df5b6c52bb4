"""An interned name created in a savepoint is cached only when the transaction around it
commits (adapter/store/interning.py): SQLAlchemy reports a savepoint's release as a commit,
and on SQLite the name's row is written in the writer's transaction, so a transaction
rolled back after the release takes the row away. A cached id would then name nothing, and
the next writer would store it (an outbox row without its destination)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from adapter.store.facilities import facility_key
from adapter.store.models import FacilityName


def _names(factory: sessionmaker[Session]) -> dict[str, int]:
    with factory() as session:
        return {r.name: r.facility_key for r in session.scalars(select(FacilityName))}


def test_a_name_made_in_a_released_savepoint_of_a_rolled_back_transaction_is_made_again(
    session_factory: sessionmaker[Session],
) -> None:
    with session_factory() as session, session.begin():
        with session.begin_nested():
            facility_key(session, "lost-clinic")
        session.rollback()
    if session_factory.kw["bind"].dialect.name == "sqlite":  # PostgreSQL commits it apart
        assert "lost-clinic" not in _names(session_factory)
    with session_factory() as session, session.begin():
        key = facility_key(session, "lost-clinic")
    assert _names(session_factory) == {"lost-clinic": key}


def test_a_name_made_in_a_released_savepoint_is_cached_at_the_commit(
    session_factory: sessionmaker[Session],
) -> None:
    with session_factory() as session, session.begin():
        with session.begin_nested():
            made = facility_key(session, "kept-clinic")
        assert facility_key(session, "kept-clinic") == made
    assert _names(session_factory) == {"kept-clinic": made}
    with session_factory() as session, session.begin():
        assert facility_key(session, "kept-clinic") == made

"""The care rows the pipeline writes (adapter/store/care.py), on SQLite and PostgreSQL alike:
an activity row is extended, a referral row closed and a registration reopened in place."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from adapter.store import care

T = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def _rows(session: Session, source: str) -> list[care.CareRow]:
    return [r for r in care.list_care(session, persons=["rec"]) if r.source == source]


def test_activity_row_is_extended_and_restarted(session_factory: sessionmaker[Session]) -> None:
    with session_factory.begin() as session:
        first = care.note_activity(session, "rec", "f", at=T, until=T + DAY, detail="a")
        again = care.note_activity(
            session, "rec", "f", at=T + DAY / 2, until=T + 2 * DAY, detail="b"
        )
        assert (again.id, again.start_at, again.end_at, again.detail) == (
            first.id,
            T,
            T + 2 * DAY,
            "b",
        )
        # lapsed: starts again; an earlier until never shortens it
        late = care.note_activity(
            session, "rec", "f", at=T + 5 * DAY, until=T + 4 * DAY, detail="c"
        )
        assert (late.start_at, late.end_at) == (T + 5 * DAY, T + 4 * DAY)
        assert _rows(session, "activity") == [late]


def test_referral_closes_and_registration_reopens(session_factory: sessionmaker[Session]) -> None:
    with session_factory.begin() as session:
        care.note_referral(session, "rec", "f", "ServiceRequest/1", at=T, end=None, detail="open")
        care.note_referral(
            session, "rec", "f", "ServiceRequest/1", at=T + DAY, end=T + 3 * DAY, detail="closed"
        )
        (referral,) = _rows(session, "referral")
        assert (referral.end_at, referral.detail) == (T + 3 * DAY, "closed")
        care.register(session, "rec", "f", at=T, detail="signed")
        care.register(session, "rec", "g", at=T + DAY, detail="moved")
        care.register(session, "rec", "f", at=T + 2 * DAY, detail="back")
        registered = {r.facility_id: r for r in _rows(session, "registered")}
        assert (registered["f"].start_at, registered["f"].end_at) == (T + 2 * DAY, None)
        assert registered["g"].end_at == T + 2 * DAY

"""Migration 0030 (decision 0075) on a database that holds resources and outbox rows
(SQLite, and PostgreSQL in the -m db pass): the downgrade writes the current versions'
history rows back as 0027 had them (no body), the upgrade deletes them again, and every
read of the history (vread, instance and type history, ``_at``) answers the same on both
sides; the outbox's ``patient_key`` goes and comes back, its rows read the same, and a
destination's sequence numbers stay unique either way."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine, inspect, select, text, update
from sqlalchemy.exc import IntegrityError

from adapter.store import make_engine, migrate, read_history, read_version, save_resources
from adapter.store import session_factory as make_factory
from adapter.store.engine import downgrade
from adapter.store.history import HistoryQuery, read_history_page
from adapter.store.models import DeliveryAttempt, Outbox, ResourceVersion
from adapter.store.outbox import enqueue_many, list_deliveries
from tests.integration.delivery_support import store_named
from tests.integration.outbox_forms import order_texts

T = [datetime(2026, 12, 5, 3, n, tzinfo=UTC) for n in range(4)]


def _history_rows(engine: Engine) -> dict[tuple[str, int], bool]:
    """(id, version) -> has a body."""
    v = ResourceVersion.__table__
    with engine.connect() as conn:
        return {
            (row.id, row.version_id): row.body is not None
            for row in conn.execute(select(v.c.id, v.c.version_id, v.c.body))
        }


def _reads(engine: Engine) -> dict[str, object]:
    with make_factory(engine)() as session:
        p1 = read_history(session, "Patient", "p1")
        typed = read_history_page(session, HistoryQuery("Patient"))
        at = read_history_page(session, HistoryQuery("Patient", "p1", at=(T[0], T[2])))
        return {
            "vread": [read_version(session, "Patient", "p1", n)["gender"] for n in (1, 2, 3)],
            "p1": (p1[0], [(v.version_id, v.body["gender"]) for v in p1[1]]),
            "type": (typed[0], [(v.id, v.version_id) for v in typed[1]]),
            "at": (at[0], [v.version_id for v in at[1]]),
        }


def test_0030_deletes_the_current_versions_history_rows_and_downgrades(
    blank_database_url: str,
) -> None:
    engine = make_engine(blank_database_url)
    try:
        migrate(engine)
        factory = make_factory(engine)
        for n, gender in enumerate(("female", "male", "other")):
            with factory.begin() as session:
                people = [{"resourceType": "Patient", "id": "p1", "gender": gender}]
                if n == 0:
                    people.append({"resourceType": "Patient", "id": "p2", "gender": "unknown"})
                save_resources(session, people, message_id=None, now=T[n])
        expected = {
            "vread": ["female", "male", "other"],
            "p1": (3, [(3, "other"), (2, "male"), (1, "female")]),
            "type": (4, [("p1", 3), ("p1", 2), ("p1", 1), ("p2", 1)]),
            "at": (2, [2, 1]),  # from T0 to T2: version 1 (T0-T1) and 2 (T1-T2), not 3 (T2)
        }
        assert _history_rows(engine) == {("p1", 1): True, ("p1", 2): True}
        assert _reads(engine) == expected

        downgrade(engine, "0027")
        assert _history_rows(engine) == {
            ("p1", 1): True,
            ("p1", 2): True,
            ("p1", 3): False,  # the current versions, bodiless as 0016-0027 wrote them
            ("p2", 1): False,
        }

        migrate(engine)
        assert _history_rows(engine) == {("p1", 1): True, ("p1", 2): True}
        assert _reads(engine) == expected
    finally:
        engine.dispose()


def _outbox_rows(engine: Engine) -> list[tuple]:
    with make_factory(engine)() as session:
        _, rows = list_deliveries(session, limit=100)
    texts = order_texts(["Patient/p1", "Organization/org1"])  # hashed since 0035
    return sorted(
        (r.id, r.resource_id, r.patient_key, texts[r.order_key], r.sequence) for r in rows
    )


def _sequences_unique(engine: Engine) -> bool:
    """Whether the database refuses a second row with a destination's number."""
    o = Outbox.__table__
    try:
        with engine.begin() as conn:
            conn.execute(update(o).where(o.c.id == 2).values(sequence=1))  # o2's row
    except IntegrityError:
        return True
    return False


def test_0030_drops_the_outbox_patient_key_and_numbers_stay_unique(
    blank_database_url: str,
) -> None:
    engine = make_engine(blank_database_url)
    try:
        migrate(engine)
        items = [
            {
                "destination": "d",
                "resource_type": rtype,
                "resource_id": rid,
                "version_id": 1,
                "patient_key": patient,
            }
            for rtype, rid, patient in (
                ("Observation", "o1", "Patient/p1"),
                ("Observation", "o2", "Patient/p1"),
                ("Patient", "p1", "Patient/p1"),
                ("Organization", "org1", None),
            )
        ]
        with make_factory(engine).begin() as session:
            store_named(session, items, now=T[0])  # an outbox row names a stored resource
            enqueue_many(session, items, now=T[0])
        o = Outbox.__table__
        with engine.begin() as conn:
            conn.execute(update(o).where(o.c.id == 1).values(sequence=1))  # o1's row
        with make_factory(engine).begin() as session:  # o1 was sent once: its attempt
            session.add(
                DeliveryAttempt(
                    outbox_id=1, destination="d", attempted_at=T[0], outcome="retry", status="503"
                )
            )
        expected = [
            (1, "o1", "Patient/p1", "Patient/p1", 1),
            (2, "o2", "Patient/p1", "Patient/p1", None),
            (3, "p1", "Patient/p1", "Patient/p1", None),
            (4, "org1", None, "Organization/org1", None),
        ]
        assert _outbox_rows(engine) == expected
        assert "patient_key" not in {c["name"] for c in inspect(engine).get_columns("outbox")}
        assert _sequences_unique(engine)

        downgrade(engine, "0027")
        # the outbox's copy on SQLite keeps the attempts (its DROP TABLE no longer cascades)
        assert _attempts(engine) == [(1, "503")]
        with engine.connect() as conn:
            stored = conn.execute(
                text("SELECT resource_id, patient_key FROM outbox ORDER BY id")
            ).all()
        assert [tuple(r) for r in stored] == [
            ("o1", "Patient/p1"),
            ("o2", "Patient/p1"),
            ("p1", "Patient/p1"),
            ("org1", None),
        ]
        assert _sequences_unique(engine)

        migrate(engine)
        assert _outbox_rows(engine) == expected
        assert _sequences_unique(engine)
        assert _attempts(engine) == [(1, "503")]
    finally:
        engine.dispose()


def _attempts(engine: Engine) -> list[tuple[int, str]]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT outbox_id, status FROM delivery_attempt")).all()
    return [tuple(r) for r in rows]

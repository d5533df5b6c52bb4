"""Migration 0030 (decision 0075) on a database that holds resources (SQLite, and
PostgreSQL in the -m db pass): the downgrade writes the current versions' history rows
back as 0027 had them (no body), the upgrade deletes them again, and every read of the
history (vread, instance and type history, ``_at``) answers the same on both sides."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine, select

from adapter.store import make_engine, migrate, read_history, read_version, save_resources
from adapter.store import session_factory as make_factory
from adapter.store.history import HistoryQuery, read_history_page
from adapter.store.models import ResourceVersion
from tests.integration.test_migration_0018 import _downgrade

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

        _downgrade(engine, "0027")
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

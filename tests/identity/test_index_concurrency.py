"""One writer per person: 8 feeds of the same person from 3 facilities, at the same moment,
in real threads with their own connections, give exactly one consortium person, round
after round (on PostgreSQL the advisory locks on the normalised keys do it; on SQLite the
database write lock)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from adapter.identity.index.resolve import index_patients
from adapter.identity.rules import rules_at
from adapter.store.identity_tables import IdentityRecord
from tests.identity.hl7 import national_id

NOW = datetime(2026, 12, 8, 12, 0, tzinfo=UTC)
FACILITIES = ("county", "shiqiao", "liuhe")
ROUNDS = 6


def _feed(n: int, nid: str, round_no: int) -> tuple[str, dict]:
    facility = FACILITIES[n % 3]
    ident = [
        {"system": "urn:oid:2.16.156.10011.1.3", "value": nid if n % 2 else nid[:6] + nid[8:17]}
    ]
    return facility, {
        "resourceType": "Patient",
        "id": f"{facility}-{round_no}",  # each facility's record of the person
        "identifier": ident,
        "name": [{"text": "韩秀兰"}],
        "gender": "female",
        "birthDate": "1950-01-15",
    }


def test_eight_parallel_feeds_give_one_person(session_factory: sessionmaker[Session]) -> None:
    rules = rules_at(None)
    for round_no in range(ROUNDS):
        nid = national_id("430999", "19500115", f"{round_no * 2:03d}")
        start = threading.Barrier(8)
        errors: list[BaseException] = []

        def feed(
            n: int,
            nid: str = nid,
            round_no: int = round_no,
            start: threading.Barrier = start,
            errors: list[BaseException] = errors,
        ) -> None:
            facility, patient = _feed(n, nid, round_no)
            try:
                start.wait()
                with session_factory.begin() as session:
                    index_patients(session, [patient], facility_id=facility, rules=rules, now=NOW)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=feed, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors, errors
        with session_factory() as session:
            persons = session.scalar(
                select(func.count(func.distinct(IdentityRecord.person_id))).where(
                    IdentityRecord.patient_id.like(f"%-{round_no}")
                )
            )
            records = session.scalar(
                select(func.count()).where(IdentityRecord.patient_id.like(f"%-{round_no}"))
            )
        assert (records, persons) == (3, 1), f"round {round_no}"

"""Decision 0155: a record indexed again with the features it has stored keeps them and
their keys without working out their union (``resolve_record``); with features that differ
the union is worked out as before. Real database: the index's rows after each message."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from adapter.identity.features import Features, features_of
from adapter.identity.index.locks import key_hash
from adapter.identity.index.resolve import index_patients
from adapter.identity.rules import rules_at
from adapter.store.identity_tables import IdentityHistory, IdentityKey, IdentityRecord

NOW = datetime(2026, 12, 8, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
NID = "430999195001150825"  # 1950-01-15, female (check digit valid or not: evidence only)


def _patient(pid: str, *, card: str | None, phone: str | None, nid: str | None) -> dict[str, Any]:
    ids = [{"system": "urn:oid:2.16.156.10011.1.19", "value": card}] if card else []
    if nid:
        ids.append({"system": "urn:oid:2.16.156.10011.1.3", "value": nid})
    body: dict[str, Any] = {
        "resourceType": "Patient",
        "id": pid,
        "identifier": ids,
        "name": [{"text": "韩秀兰"}],
        "gender": "female",
        "birthDate": "1950-01-15",
    }
    if phone:
        body["telecom"] = [{"system": "phone", "value": phone}]
    return body


def _variants() -> list[dict[str, Any]]:
    return [
        _patient("p1", card=card, phone=phone, nid=nid)
        for card, phone, nid in itertools.product(
            (None, "JK77"), (None, "13900000001"), (None, NID)
        )
    ]


def _index_rows(session: Session) -> tuple[list[Any], list[Any], int]:
    records = session.execute(
        select(
            IdentityRecord.patient_id,
            IdentityRecord.person_id,
            IdentityRecord.rule,
            IdentityRecord.features,
            IdentityRecord.updated_at,
        )
    ).all()
    keys = session.execute(select(IdentityKey.key_hash, IdentityKey.patient_id)).all()
    history = len(session.scalars(select(IdentityHistory.id)).all())
    return sorted(map(tuple, records), key=repr), sorted(map(tuple, keys)), history


def test_a_union_of_equal_features_is_themselves() -> None:
    """The premise: ``union`` of features equal to the stored ones gives them back, so their
    blocking keys are the message's own."""
    rules = rules_at(None)
    for patient in _variants():
        mine = features_of(patient, "f", rules)
        stored = Features.from_json(mine.as_json())  # as the index reads it back
        assert stored == mine
        union = mine.union(stored)
        assert union == mine
        assert {key_hash(k) for k in union.blocking_keys()} == {
            key_hash(k) for k in mine.blocking_keys()
        }


def test_each_variant_after_each_other(session_factory: sessionmaker[Session]) -> None:
    """Every variant of one record after every other (and after itself): the index's rows
    are the union of what was said, and a message repeating the stored features writes
    nothing (no new key, no history, ``updated_at`` kept)."""
    rules = rules_at(None)
    variants = _variants()
    unchanged = 0
    for first, second in itertools.product(range(len(variants)), repeat=2):
        with session_factory.begin() as session:
            session.execute(IdentityHistory.__table__.delete())
            session.execute(IdentityKey.__table__.delete())
            session.execute(IdentityRecord.__table__.delete())
        with session_factory.begin() as session:
            index_patients(session, [variants[first]], facility_id="f", rules=rules, now=NOW)
        later = NOW + timedelta(hours=1)
        with session_factory.begin() as session:
            index_patients(session, [variants[second]], facility_id="f", rules=rules, now=later)
        with session_factory() as session:
            records, keys, history = _index_rows(session)
        union = features_of(variants[second], "f", rules).union(
            features_of(variants[first], "f", rules)
        )
        assert records[0][3] == union.as_json(), (first, second)
        assert {k for k, _ in keys} == {key_hash(k) for k in union.blocking_keys()}
        assert history == 1  # linked once, when first indexed
        # the same message again: nothing written (the stored features are the message's)
        with session_factory.begin() as session:
            outcome = index_patients(
                session,
                [variants[second]],
                facility_id="f",
                rules=rules,
                now=later + DAY,
            )
        assert outcome.persons == {"p1": records[0][1]}
        with session_factory() as session:
            again = _index_rows(session)
        if records[0][3] == features_of(variants[second], "f", rules).as_json():
            assert again == (records, keys, history)
            unchanged += 1
    assert unchanged >= len(variants)  # each variant after itself at least

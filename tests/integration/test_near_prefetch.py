"""The patient index's ``near`` read for a whole batch at once on PostgreSQL
(``prefetch_near``, decision 0122): every answer it gives is the one ``near`` reads from
the database, and a write of the batch makes it read again where the write changes the
answer."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from adapter.identity.index import records as rows
from adapter.identity.index.locks import key_hash
from adapter.store.identity_tables import IdentityBlock
from adapter.store.resources import batch_writes

pytestmark = pytest.mark.db

LIMIT = 3  # candidates_per_key: small, so that a key shared by many is an oversized block


def _record(patient_id: str, at: datetime) -> dict[str, Any]:
    return {
        "patient_id": patient_id,
        "person_id": f"person-{patient_id}",
        "facility_id": "f1",
        "link_kind": "auto",
        "rule_version": 1,
        "rule": "no-match",
        "score": 0.0,
        "evidence": {},
        "features": {"record": patient_id},
        "created_at": at,
        "updated_at": at,
    }


def _seeded(factory: sessionmaker[Session]) -> tuple[list[str], dict[str, set[str]]]:
    """60 records over 12 keys (key 0 shared by most: an oversized block), some blocked
    pairs; (the record ids, each one's keys)."""
    chance = random.Random(7)
    keys = [key_hash(f"key|{n}") for n in range(12)]
    start = datetime(2026, 1, 1, tzinfo=UTC)
    ids = [f"r{n:03d}" for n in range(60)]
    owned: dict[str, set[str]] = {}
    with factory.begin() as session:
        for n, pid in enumerate(ids):
            mine = {keys[0]} if n % 3 else set()
            mine |= set(chance.sample(keys[1:], 2))
            owned[pid] = mine
            # created out of id order: the ranking by time differs from the one by id
            at = start + timedelta(minutes=chance.randrange(1000))
            rows.insert_record(session, _record(pid, at), keys=mine)
        for a, b in [("r001", "r002"), ("r004", "r010"), ("r007", "r030")]:
            session.add(IdentityBlock(patient_id=a, other_id=b, actor="test", at=start))
    return ids, owned


def _same(a: rows.Near, b: rows.Near) -> bool:
    def shape(n: rows.Near) -> tuple[Any, ...]:
        others = sorted((o.patient_id, o.person_id, h, blocked) for o, h, blocked in n.others)
        own = None if n.existing is None else (n.existing.patient_id, n.existing.person_id)
        return own, sorted(n.stored_keys), others, n.omitted, n.largest, n.counted

    return shape(a) == shape(b)


def test_prefetched_answers_are_the_database_s_and_writes_make_near_read_again(
    session_factory: sessionmaker[Session], engine: Any
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("prefetch_near is PostgreSQL's (SQLite's batch holds its write lock)")
    ids, owned = _seeded(session_factory)
    extra = key_hash("key|only-new")
    asked = [(pid, owned[pid]) for pid in ids[::2]]
    asked += [("new-1", {key_hash("key|0"), key_hash("key|5")}), ("new-2", {extra})]
    with session_factory.begin() as session:
        truth = {
            (pid, frozenset(h)): rows._near(session, pid, h, limit=LIMIT, own=True)
            for pid, h in asked
        }
        batch_writes(session)
        rows.prefetch_near(session, asked, limit=LIMIT)
        for pid, hashes in asked:  # every answer given without a read, as the database's
            early = rows._prefetched_answer(session, pid, hashes, limit=LIMIT, own=True)
            assert early is not None and _same(early, truth[(pid, frozenset(hashes))]), pid
        # a new record sharing key 5 (and record r000 updated): those answers are read again
        later = datetime(2027, 1, 1, tzinfo=UTC)
        rows.insert_record(session, _record("new-3", later), keys={key_hash("key|5")})
        rows.update_record(session, "r000", {"person_id": "person-moved"})
        for pid, hashes in asked:
            early = rows._prefetched_answer(session, pid, hashes, limit=LIMIT, own=True)
            fresh = rows._near(session, pid, hashes, limit=LIMIT, own=True)
            changed = key_hash("key|5") in hashes or any(
                o.patient_id == "r000" for o, _, _ in truth[(pid, frozenset(hashes))].others
            )
            if changed or pid == "r000":
                assert early is None, pid
            else:
                assert early is not None and _same(early, fresh), pid
            assert _same(rows.near(session, pid, hashes, limit=LIMIT), fresh), pid
        # a block written (a review decision): nothing prefetched is given any more
        rows.forget_near(session)
        assert rows._prefetched_answer(session, "new-2", {extra}, limit=LIMIT, own=True) is None

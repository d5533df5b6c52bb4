"""The claim's rule, checked row by row against a model of it (decision 0040, 2026-12-04):
a row is claimable when it is due (pending and its time has come, or in flight under a
lease that ran out) and no earlier row (lower id) of its destination and order key is
pending or in flight; a claim takes the claimable rows in id order, up to its limit.

The queues are made directly in the outbox (every mix of states, several destinations,
rows about no patient), so a claim that took a row behind its patient's head, skipped a
head, kept a delivered or dead row blocking, ignored an expired lease or chose by another
order than the id fails here. Runs on SQLite and, with ADAPTER_TEST_DATABASE_URL, on
PostgreSQL."""

from __future__ import annotations

import random
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from adapter.store import enqueue_many
from adapter.store.models import Outbox
from adapter.store.outbox import claim
from tests.integration.delivery_support import T0, store_named

DEST, OTHER = "hospital-fhir", "platform"
LEASE = 60.0


def _queue(factory: sessionmaker[Session], keys: list[tuple[str, str | None]]) -> list[int]:
    """One pending row per (destination, patient key or None), in this order; their ids."""
    items = [
        {
            "destination": destination,
            "resource_type": "Observation",
            "resource_id": f"o{n}",
            "version_id": 1,
            "patient_key": patient,
        }
        for n, (destination, patient) in enumerate(keys)
    ]
    with factory.begin() as session:
        store_named(session, items)  # an outbox row names a stored resource (0084)
        enqueue_many(session, items, now=T0)
        return list(session.scalars(select(Outbox.id).order_by(Outbox.id)))


def _set(factory: sessionmaker[Session], row_id: int, kind: str) -> None:
    """Put a row in one of the states a queue holds."""
    values: dict[str, object] = {
        "pending-due": {"state": "pending", "next_attempt_at": T0},
        "pending-later": {"state": "pending", "next_attempt_at": T0 + timedelta(minutes=5)},
        "in-flight": {
            "state": "in-flight",
            "claimed_by": "another",
            "claimed_until": T0 + timedelta(seconds=30),
        },
        "in-flight-expired": {
            "state": "in-flight",
            "claimed_by": "a-dead-worker",
            "claimed_until": T0 - timedelta(seconds=1),
        },
        "delivered": {"state": "delivered", "delivered_at": T0},
        "dead": {"state": "dead"},
    }[kind]
    with factory.begin() as session:
        session.execute(update(Outbox).where(Outbox.id == row_id).values(**values))


def _expected(factory: sessionmaker[Session], destination: str, limit: int) -> list[int]:
    """The model: the rule of the module docstring, applied in Python."""
    with factory() as session:
        found = session.scalars(
            select(Outbox).where(Outbox.destination == destination).order_by(Outbox.id)
        ).all()
    seen: set[int] = set()
    out = []
    for row in found:
        if row.state not in ("pending", "in-flight"):
            continue
        head = row.order_key not in seen
        seen.add(row.order_key)
        due = (row.state == "pending" and row.next_attempt_at <= T0) or (
            row.state == "in-flight" and row.claimed_until < T0
        )
        if head and due:
            out.append(row.id)
    return out[:limit]


def _claim(factory: sessionmaker[Session], worker: str, limit: int, destination: str = DEST):
    with factory.begin() as session:
        return claim(
            session,
            destination=destination,
            worker=worker,
            now=T0,
            lease_seconds=LEASE,
            limit=limit,
        )


def test_each_claim_takes_the_due_heads_in_id_order_and_nothing_behind_them(
    session_factory: sessionmaker[Session],
) -> None:
    #           ids: 1       2       3       4       5       6       7       8       9
    ids = _queue(
        session_factory,
        [
            *[(DEST, "Patient/a"), (DEST, "Patient/b"), (DEST, "Patient/a"), (DEST, "Patient/c")],
            *[(DEST, "Patient/b"), (DEST, None), (DEST, "Patient/c"), (OTHER, "Patient/d")],
            (DEST, "Patient/d"),
        ],
    )
    _set(session_factory, ids[0], "delivered")  # a: 1 delivered, 3 is the head
    _set(session_factory, ids[1], "pending-later")  # b: 2 waits for a retry, 5 behind it
    _set(session_factory, ids[3], "dead")  # c: 4 dead blocks nothing, 7 is the head
    _set(session_factory, ids[7], "in-flight")  # another destination's row blocks nothing

    taken = _claim(session_factory, "w1", 2)
    assert [r.id for r in taken] == [ids[2], ids[5]]  # a's 3, the row about no patient
    assert all((r.state, r.claimed_by) == ("in-flight", "w1") for r in taken)
    assert [r.id for r in _claim(session_factory, "w2", 10)] == [ids[6], ids[8]]
    assert _claim(session_factory, "w3", 10) == []  # b waits; every other head is taken

    # a's head in flight under a live lease holds back a's next row, however due
    more = _queue(session_factory, [(DEST, "Patient/a")])
    assert _claim(session_factory, "w3", 10) == []
    # the lease of c's head runs out: it is taken again, and only it
    _set(session_factory, ids[6], "in-flight-expired")
    assert [r.id for r in _claim(session_factory, "w3", 10)] == [ids[6]]
    # a's head delivered: a's next row (queued last) becomes the head
    _set(session_factory, ids[2], "delivered")
    assert [r.id for r in _claim(session_factory, "w3", 10)] == [more[-1]]


def test_claims_follow_the_rule_on_random_queues(session_factory: sessionmaker[Session]) -> None:
    """Random queues of 5 patients, rows about no patient and another destination, in every
    state; each claim (limit 3) must return exactly what the model expects, claims going on
    until nothing is left, delivering some of what was claimed between them."""
    chance = random.Random(1404)
    patients = [f"Patient/p{n}" for n in range(5)] + [None]
    kinds = ["pending-due"] * 4 + [
        "pending-later",
        "in-flight",
        "in-flight-expired",
        "delivered",
        "dead",
    ]
    for _round in range(4):
        with session_factory.begin() as session:
            session.execute(Outbox.__table__.delete())
        keys = [
            (chance.choice([DEST, DEST, DEST, OTHER]), chance.choice(patients)) for _ in range(40)
        ]
        ids = _queue(session_factory, keys)
        for row_id in ids:
            _set(session_factory, row_id, chance.choice(kinds))
        for step in range(30):
            expected = _expected(session_factory, DEST, 3)
            taken = _claim(session_factory, f"w{step}", 3)
            assert [r.id for r in taken] == expected, f"round {_round}, claim {step}"
            if not taken:
                break
            for row in taken:  # some are delivered, the others stay in flight (live lease)
                if chance.random() < 0.6:
                    _set(session_factory, row.id, "delivered")
        else:
            raise AssertionError("the claims never ran dry")

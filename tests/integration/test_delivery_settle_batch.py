"""Settling a batch in a few statements (decision 0040): mixed outcomes land on the right
rows, a row whose lease another worker took over is left to that worker (its attempt is
still recorded), and older pending versions of delivered resources are coalesced."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from adapter.store.models import Outbox
from adapter.store.outbox import Settlement, claim, settle_coalesced_many, settle_many
from tests.integration.delivery_support import DEST, T0, attempts, observation, queue, rows


def test_a_batch_settles_mixed_outcomes_and_respects_a_lost_lease(
    session_factory: sessionmaker[Session],
) -> None:
    ids = queue(session_factory, [observation(f"o{n}", f"p{n}", "v1") for n in range(4)])
    later = queue(session_factory, [observation("o0", "p0", "v2")])  # pending behind o0
    with session_factory.begin() as session:
        mine = claim(session, destination=DEST, worker="wA", now=T0, lease_seconds=10, limit=10)
    assert [r.id for r in mine] == ids
    # wA's lease runs out; wB takes the row of o3 over
    with session_factory.begin() as session:
        taken = claim(
            session,
            destination=DEST,
            worker="wB",
            now=T0 + timedelta(seconds=11),
            lease_seconds=10,
            limit=10,
        )
    assert [r.id for r in taken] == ids  # every expired row is due again ...
    with session_factory.begin() as session:  # ... give o0..o2 back to wA for the test
        session.execute(update(Outbox).where(Outbox.id.in_(ids[:3])).values(claimed_by="wA"))

    at = T0 + timedelta(seconds=12)
    by_id = {r.id: r for r in mine}
    batch = [
        Settlement(by_id[ids[0]], "delivered", at, status="200", sent_version=2),
        Settlement(by_id[ids[1]], "delivered", at, status="201", sent_version=1),
        Settlement(
            by_id[ids[2]],
            "retry",
            at,
            status="503",
            error="busy",
            next_attempt_at=at + timedelta(seconds=60),
        ),
        Settlement(by_id[ids[3]], "delivered", at, status="200", sent_version=1),  # wB's now
    ]
    with session_factory.begin() as session:
        settled = settle_many(session, batch, worker="wA")
        coalesced = settle_coalesced_many(
            session, [s for s in batch if s.outcome == "delivered"], worker="wA"
        )
    assert settled == set(ids[:3]) and coalesced == 1

    state = rows(session_factory)
    assert (state[ids[0]].state, state[ids[0]].sent_version_id, state[ids[0]].last_status) == (
        "delivered",
        2,
        "200",
    )
    assert (state[ids[1]].state, state[ids[1]].last_status) == ("delivered", "201")
    assert (state[ids[2]].state, state[ids[2]].last_error, state[ids[2]].attempts) == (
        "pending",
        "busy",
        1,
    )
    assert state[ids[2]].claimed_by is None
    assert (state[ids[3]].state, state[ids[3]].claimed_by) == ("in-flight", "wB")  # untouched
    assert [a.worker for a in attempts(session_factory, ids[3])] == ["wA"]  # still recorded
    assert (state[later[0]].state, state[later[0]].sent_version_id) == ("delivered", 2)
    assert [a.outcome for a in attempts(session_factory, later[0])] == ["delivered"]
    assert all(state[i].first_attempt_at is not None for i in ids[:3])

"""An oversized block (decision 0056): hundreds of look-alike records without a national ID
(one name, birth date, sex, phone and township; a new local number each, as a lab sends a
test patient or an unknown emergency patient) must cost each new record a bounded amount of
work, queue a bounded number of review items that say what was left out, and never hide a
record that carries a national ID."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event, func, select
from sqlalchemy.orm import Session, sessionmaker

from adapter.identity import person_of
from adapter.identity.index import review as reviews
from adapter.identity.index.resolve import index_patients
from adapter.identity.rules import NATIONAL_ID_SYSTEM, Limits, MatchingRules, rules_at
from adapter.pipeline import Receipt
from adapter.store import make_engine, migrate
from adapter.store import session_factory as make_factory
from adapter.store.identity_tables import IdentityRecord, IdentityReview
from tests.identity.hl7 import national_id, oru
from tests.integration.connector_helpers import example_pipeline

NOW = datetime(2026, 12, 8, 12, 0, tzinfo=UTC)
RULES = rules_at(None)
CAP = RULES.limits.reviews_per_record  # 10
LIMIT = RULES.limits.candidates_per_key  # 50
BLOCK = 320
NID = national_id("430999", "19750412", "084")  # a woman born 1975-04-12


def lookalike(n: int, nid: str | None = None) -> dict[str, Any]:
    """The n-th copy of one patient: the same demographics, its own record id."""
    patient: dict[str, Any] = {
        "resourceType": "Patient",
        "id": f"lab-{n:05d}",
        "name": [{"use": "official", "family": "赵", "given": ["小红"], "text": "赵小红"}],
        "birthDate": "1975-04-12",
        "gender": "female",
        "telecom": [{"system": "phone", "value": "13907310000"}],
        "address": [{"text": "湖南省青山县石桥镇观音村1组"}],
        "identifier": [{"system": "urn:lab:mrn", "value": f"MRN{n:05d}"}],
    }
    if nid:
        patient["identifier"].append({"system": NATIONAL_ID_SYSTEM, "value": nid})
    return patient


@contextmanager
def counting(engine: Engine) -> Iterator[list[str]]:
    """The statements sent to the database meanwhile (an executemany counts once)."""
    sent: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        sent.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", record)


def index_one(
    factory: sessionmaker[Session], patient: dict[str, Any], n: int, rules: MatchingRules = RULES
) -> int:
    """Index one record in its own transaction; returns the review items it opened."""
    with factory.begin() as session:
        outcome = index_patients(
            session, [patient], facility_id="f1", rules=rules, now=NOW + timedelta(seconds=n)
        )
    return outcome.reviews


def items_count(factory: sessionmaker[Session]) -> int:
    with factory() as session:
        return session.scalar(select(func.count()).select_from(IdentityReview)) or 0


def test_a_block_of_lookalikes_costs_each_record_a_bounded_amount(
    engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    # the first record carries a national ID; then a block of copies without one
    index_one(session_factory, lookalike(0, nid=NID), 0)
    opened: list[int] = []
    statements: list[int] = []
    for n in range(1, BLOCK + 1):
        with counting(engine) as sent:
            opened.append(index_one(session_factory, lookalike(n), n))
        statements.append(len(sent))
    # each record queues an item per earlier look-alike, at most CAP: linear, not quadratic
    assert opened == [min(n, CAP) for n in range(1, BLOCK + 1)]
    assert items_count(session_factory) == sum(min(n, CAP) for n in range(1, BLOCK + 1))
    # statements per record flat once the block is larger than the limit
    assert max(statements[-50:]) <= max(statements[LIMIT : LIMIT + 50])
    assert max(statements) <= min(statements[LIMIT:]) + 2

    with session_factory() as session:
        last = session.scalars(
            select(IdentityReview).where(
                (IdentityReview.patient_id == f"lab-{BLOCK:05d}")
                | (IdentityReview.other_id == f"lab-{BLOCK:05d}")
            )
        ).all()
        early = session.scalars(
            select(IdentityReview).where(IdentityReview.other_id == "lab-00002")
        ).all()
    # the last record: compared with the LIMIT indexed most recently, CAP items, each saying
    # what was left out
    assert len(last) == CAP
    note = last[0].evidence["oversizedBlock"]
    assert f"{BLOCK - LIMIT} more look-alike records not compared" in note
    assert f"shared with {BLOCK} records" in note
    assert f"{LIMIT - CAP} more review items not queued" in note
    assert all(i.reason == "possible-match" and i.evidence["name"] == "agree" for i in last)
    # ... and with the most recent ones (the strongest are equal: the most recent first)
    others = {i.patient_id for i in last} - {f"lab-{BLOCK:05d}"}
    assert others == {f"lab-{n:05d}" for n in range(BLOCK - CAP, BLOCK)}
    # a record of a small block says nothing of limits
    assert early and all("oversizedBlock" not in i.evidence for i in early)

    # a duplicate carrying the national ID still links by it, whatever the block
    with counting(engine) as sent:
        index_one(session_factory, lookalike(BLOCK + 1, nid=NID), BLOCK + 1)
    assert len(sent) <= max(statements) + 2
    with session_factory() as session:
        first = person_of(session, "lab-00000")
        assert person_of(session, f"lab-{BLOCK + 1:05d}") == first
        link = session.get(IdentityRecord, f"lab-{BLOCK + 1:05d}")
        assert link is not None and link.rule == "hard-key" and link.link_kind == "auto"


def test_a_block_larger_than_the_sample_is_counted_no_further_and_ids_still_link(
    engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    """With small limits (5 candidates per key: a sample of 50 key entries, counted up to
    51), a block of 80: the items say "at least" and "more than"; the ID still links."""
    rules = RULES.model_copy(update={"limits": Limits(candidates_per_key=5, reviews_per_record=2)})
    index_one(session_factory, lookalike(0, nid=NID), 0, rules)
    statements = []
    for n in range(1, 81):
        with counting(engine) as sent:
            assert index_one(session_factory, lookalike(n), n, rules) == min(n, 2)
        statements.append(len(sent))
    assert max(statements[-20:]) <= max(statements[5:25])
    with session_factory() as session:
        items = session.scalars(
            select(IdentityReview).where(IdentityReview.other_id == "lab-00080")
        ).all()
    assert {i.patient_id for i in items} == {"lab-00078", "lab-00079"}
    note = items[0].evidence["oversizedBlock"]
    assert note.startswith("at least 46 more look-alike records not compared")
    assert "shared with more than 50 records: the 5 indexed most recently" in note
    assert "3 more review items not queued (at most 2 per record" in note
    index_one(session_factory, lookalike(81, nid=NID), 81, rules)
    with session_factory() as session:
        assert person_of(session, "lab-00081") == person_of(session, "lab-00000")


def test_a_pair_queued_again_keeps_one_item_and_a_resolved_one_stays_resolved(
    session_factory: sessionmaker[Session],
) -> None:
    for n in range(3):
        index_one(session_factory, lookalike(n), n)
    assert items_count(session_factory) == 3  # 0-1, 0-2, 1-2
    with session_factory() as session:
        item = session.scalar(
            select(IdentityReview).where(
                IdentityReview.patient_id == "lab-00000", IdentityReview.other_id == "lab-00001"
            )
        )
        assert item is not None and item.state == "open"
        first_id, first_score = item.id, item.score
    # sent again with another township: the open items take the new score, none is added
    moved = lookalike(1)
    moved["address"] = [{"text": "湖南省青山县六合镇"}]
    index_one(session_factory, moved, 10)
    assert items_count(session_factory) == 3
    with session_factory() as session:
        item = session.get(IdentityReview, first_id)
        assert item is not None and item.state == "open" and item.version == 1
        assert item.score < first_score and item.evidence["township"] == "disagree"
        assert item.updated_at == NOW + timedelta(seconds=10)
        moved_score = item.score
    # resolved as one person, then unmerged without a block: the pair is compared again and
    # queued again, and its item stays resolved
    with session_factory.begin() as session:
        reviews.claim(session, first_id, reviewer="li", version=1, now=NOW)
        reviews.resolve(
            session,
            first_id,
            reviewer="li",
            version=2,
            decision="match",
            note=None,
            rule_version=RULES.version,
            now=NOW,
        )
    with session_factory.begin() as session:
        [merge] = reviews.merges_of(session, person_of(session, "lab-00000") or "")
        reviews.unmerge(
            session,
            merge.id,
            actor="li",
            reason="test",
            block=False,
            rule_version=RULES.version,
            now=NOW,
        )
    index_one(session_factory, lookalike(1), 20)
    assert items_count(session_factory) == 3
    with session_factory() as session:
        item = session.get(IdentityReview, first_id)
        assert item is not None and item.state == "resolved" and item.resolution == "match"
        assert item.version == 3 and item.score == moved_score
        assert item.evidence["township"] == "disagree"  # as it was when resolved


def _reviews(factory: sessionmaker[Session]) -> Counter[tuple[Any, ...]]:
    with factory() as session:
        return Counter(
            (i.patient_id, i.other_id, i.reason, i.state, i.rule, i.score, str(i.evidence))
            for i in session.scalars(select(IdentityReview))
        )


def test_a_bulk_batch_queues_what_one_transaction_per_message_queues(
    session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    """Through the pipeline, in batches of 25 (on SQLite the batch keeps ``near``'s
    answers: decision 0050) and one message per transaction: the same items, limits and
    notes included."""
    items = [
        (
            oru(name="赵小红", birth="19750412", sex="F", local=f"MRN{n:04d}"),
            Receipt("std-hl7v2", "cli", received_at=NOW),
        )
        for n in range(70)
    ]
    bulk = list(example_pipeline(session_factory).ingest_many(items, batch=25))
    assert {r.status for r in bulk} == {"processed"}
    alone_engine = make_engine(f"sqlite:///{tmp_path / 'alone.db'}")
    migrate(alone_engine)
    try:
        alone_factory = make_factory(alone_engine)
        pipeline = example_pipeline(alone_factory)
        alone = [pipeline.ingest(raw, receipt) for raw, receipt in items]
        assert {r.status for r in alone} == {"processed"}
        queued = _reviews(session_factory)
        assert queued == _reviews(alone_factory)
    finally:
        alone_engine.dispose()
    assert sum(queued.values()) == sum(min(n, CAP) for n in range(70))
    assert sum(1 for key in queued if "oversizedBlock" in key[-1]) > 0

"""A small version of the labelled population through the index on a real database: the
goals of issue 10 hold (automatic-link precision >= 99.9 %, no false link between twins or
siblings, recall >= 95 % counting pairs the index links or queues for review, at most 5 %
of records sent to review; automatic links alone: a floor of 93 %). The full-size run and the
timings are bench/bench_patient_matching.py."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from adapter.identity.index.resolve import index_patients
from adapter.identity.rules import rules_at
from adapter.store.identity_tables import IdentityRecord, IdentityReview
from tests.identity.population import population, score

NOW = datetime(2026, 12, 8, 12, 0, tzinfo=UTC)


@pytest.mark.slow
def test_small_population_meets_the_goals(session_factory: sessionmaker[Session]) -> None:
    items = population(1500, seed=11)
    rules = rules_at(None)
    with session_factory.begin() as session:
        for item in items:
            index_patients(
                session, [item["patient"]], facility_id=item["facility"], rules=rules, now=NOW
            )
    with session_factory() as session:
        links = dict(
            session.execute(select(IdentityRecord.patient_id, IdentityRecord.person_id)).all()
        )
        review_pairs = [
            (a, b)
            for a, b in session.execute(
                select(IdentityReview.patient_id, IdentityReview.other_id).where(
                    IdentityReview.state == "open"
                )
            )
        ]
    figures = score(items, links, review_pairs)
    assert figures["records"] > 2500 and figures["true_pairs"] > 1000
    assert figures["precision"] >= 0.999, figures
    assert figures["twin_false_links"] == 0, figures
    # found: linked, or the two persons joined by a review item (recall with review); the
    # automatic links alone reach ~95 % at these fault rates (decision 0023, the benchmark)
    assert figures["recall_with_review"] >= 0.95, figures
    assert figures["recall"] >= 0.93, figures
    assert figures["review_share"] <= 0.05, figures

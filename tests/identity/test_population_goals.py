"""A small version of the labelled population through the index on a real database: the
goals of issue 10 hold (automatic-link precision >= 99.9 %, no false link between twins or
siblings, recall >= 95 %, at most 5 % of records sent to review). The full-size run and the
timings are bench/bench_patient_matching.py."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from adapter.identity.index.resolve import index_patients
from adapter.identity.rules import rules_at
from adapter.store.identity_tables import IdentityRecord, IdentityReview
from tests.identity.population import population, score

NOW = datetime(2026, 12, 8, 12, 0, tzinfo=UTC)


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
        reviewed: set[str] = set()
        for a, b in session.execute(
            select(IdentityReview.patient_id, IdentityReview.other_id).where(
                IdentityReview.state == "open"
            )
        ):
            reviewed |= {a, b}
    figures = score(items, links, reviewed)
    assert figures["records"] > 2500 and figures["true_pairs"] > 1000
    assert figures["precision"] >= 0.999, figures
    assert figures["twin_false_links"] == 0, figures
    assert figures["recall"] >= 0.95, figures
    assert figures["review_share"] <= 0.05, figures

"""Resolving Patient records to consortium persons, inside the message's transaction.

``index_patients`` takes the Patients a message made, serialises on their keys (one writer per
person), compares each with the records sharing a blocking key, and links it:

* matches pointing at exactly one person: linked there (auto), with rule version, rule, score
  and evidence of the best match;
* matches pointing at several persons: the record keeps its person, each pair is reviewed;
* reviews only, or nothing: its own person (new) or the one it has; each review pair queued.

A manual link (a reviewer's or a merge's) is never moved by the resolver. A pair blocked by
a reviewer or an unmerge is never compared. Returns the persons whose FHIR Patient changed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.orm import Session

from adapter.identity.features import Features, features_of
from adapter.identity.index import records as rows
from adapter.identity.index.locks import key_hash, serialise_records
from adapter.identity.matcher import ID_CONFLICT, Decision, classify
from adapter.identity.names import compare_names
from adapter.identity.rules import MatchingRules
from adapter.store.identity_tables import IdentityReview


@dataclass(slots=True)
class IndexOutcome:
    persons: dict[str, str] = field(default_factory=dict)  # record id -> person id
    changed_persons: set[str] = field(default_factory=set)
    reviews: int = 0
    # record id -> why this message's view of the record conflicts with the stored one
    conflicts: dict[str, str] = field(default_factory=dict)


def lock_for(session: Session, features: list[Features]) -> None:
    hashes = {key_hash(k) for f in features for k in f.blocking_keys()}
    hashes |= {key_hash(f"record|{f.record}") for f in features}
    # the keys the records have stored are locked too: read in the same statement
    serialise_records(session, hashes, [f.record for f in features])


def index_patients(
    session: Session,
    patients: list[dict[str, Any]],
    *,
    facility_id: str,
    rules: MatchingRules,
    now: datetime,
    actor: str = rows.PIPELINE,
) -> IndexOutcome:
    features = [features_of(p, facility_id, rules) for p in patients]
    session.flush()  # what the session holds is written: the index is read without autoflush
    lock_for(session, features)
    outcome = IndexOutcome()
    for item in features:
        resolve_record(session, item, rules=rules, now=now, actor=actor, outcome=outcome)
    return outcome


def resolve_record(
    session: Session,
    features: Features,
    *,
    rules: MatchingRules,
    now: datetime,
    actor: str,
    outcome: IndexOutcome,
) -> None:
    given = {key_hash(k) for k in features.blocking_keys()}
    near = rows.near(session, features.record, given)
    existing = near.existing
    if existing is not None:
        stored = Features.from_json(existing.features)
        # one resource id, two people? (a child sent under a parent's national ID, which
        # the translator turns into the same Patient id): the message is told. An update
        # correcting a spelling or a date of the same person shares part of the name.
        again = classify(features, stored, rules)
        if (
            again.reason == ID_CONFLICT
            and again.evidence["name"] == "disagree"
            and compare_names(features.parsed_name, stored.parsed_name).nothing_in_common
        ):
            outcome.conflicts[features.record] = (
                "the stored Patient with this national ID has another name with nothing in "
                "common"
                + "".join(
                    f", another {k}"
                    for k in ("birthDate", "gender")
                    if again.evidence[k] == "disagree"
                )
                + ": another person registered under the same ID? (review the record)"
            )
        features = features.union(stored)
    hashes = {key_hash(k) for k in features.blocking_keys()}
    if hashes - given:  # the stored record adds keys this message does not carry
        near.others += rows.near(session, features.record, hashes - given, own=False).others
    rows.write_keys(session, features.record, hashes, near.stored_keys)
    decided: list[tuple[Row[Any], Decision]] = []
    for other, blocked in near.candidates(hashes):
        if blocked:
            continue
        decided.append((other, classify(features, Features.from_json(other.features), rules)))
    matches = [(o, d) for o, d in decided if d.outcome == "match"]
    match_persons = {o.person_id for o, _ in matches}
    reviews = [(o, d) for o, d in decided if d.outcome == "review"]

    previous = existing.person_id if existing is not None else None
    if existing is not None and existing.link_kind == "manual":
        person, best = existing.person_id, None
        reviews += [(o, d) for o, d in matches if o.person_id != person]
    elif len(match_persons) == 1:
        person = next(iter(match_persons))
        best = max((d for _, d in matches), key=lambda d: d.score)
    else:
        person = previous or rows.own_person_id(features.record)
        best = None
        reviews += [(o, d) for o, d in matches if o.person_id != person]
    for other, decision in reviews:
        if other.person_id != person:
            outcome.reviews += queue_review(
                session, features.record, other.patient_id, decision, rules, now
            )

    rule = best.rule if best else "no-match" if not existing else existing.rule
    score = best.score if best else 0.0 if not existing else existing.score
    evidence = best.evidence if best else {} if not existing else existing.evidence
    if (
        best is None
        and existing is not None
        and existing.link_kind != "manual"
        and (existing.person_id != person)
    ):
        rule, score, evidence = "no-match", 0.0, {}
    # Core statements, no unit of work (decision 0050, amended): ``near`` reads rows, not
    # ORM objects, so there is no object to keep in step
    if existing is None:
        rows.insert_record(
            session,
            {
                "patient_id": features.record,
                "person_id": person,
                "facility_id": features.facility,
                "link_kind": "auto",
                "rule_version": rules.version,
                "rule": rule,
                "score": score,
                "evidence": evidence,
                "features": features.as_json(),
                "created_at": now,
                "updated_at": now,
            },
        )
    else:
        values: dict[str, Any] = {"features": features.as_json()}
        if existing.link_kind != "manual":
            values.update(
                person_id=person,
                rule_version=rules.version,
                rule=rule,
                score=score,
                evidence=evidence,
            )
        # a record resolved again to what it is: no write (updated_at: when it last changed)
        if any(getattr(existing, k) != v for k, v in values.items()):
            rows.update_record(session, features.record, {**values, "updated_at": now})
    if previous != person:
        rows.history(
            session,
            at=now,
            action="link",
            actor=actor,
            patient_id=features.record,
            person_id=person,
            previous_person_id=previous,
            reason=f"{rule} (rule version {rules.version})",
            rule_version=rules.version,
            rule=rule,
            score=score,
            evidence=evidence,
        )
        if previous:
            outcome.changed_persons.add(previous)
    # the person's FHIR Patient carries this record's identifiers and demographics
    outcome.changed_persons.add(person)
    outcome.persons[features.record] = person


def queue_review(
    session: Session,
    patient_id: str,
    other_id: str,
    decision: Decision,
    rules: MatchingRules,
    now: datetime,
) -> int:
    """One review item per pair of records, whatever its state (a resolved pair stays
    resolved). Returns 1 when an item was opened."""
    a, b = rows.ordered(patient_id, other_id)
    found = session.scalar(
        select(IdentityReview).where(IdentityReview.patient_id == a, IdentityReview.other_id == b)
    )
    if found is not None:
        if found.state != "resolved":
            found.score, found.evidence, found.updated_at = decision.score, decision.evidence, now
        return 0
    session.add(
        IdentityReview(
            patient_id=a,
            other_id=b,
            reason=decision.reason or "possible-match",
            state="open",
            version=1,
            rule_version=rules.version,
            rule=decision.rule,
            score=decision.score,
            evidence=decision.evidence,
            created_at=now,
            updated_at=now,
        )
    )
    session.flush()
    return 1

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

from sqlalchemy import Row, bindparam, select, update
from sqlalchemy.orm import Session

from adapter.identity.features import Features, features_of
from adapter.identity.index import records as rows
from adapter.identity.index.locks import (
    key_hash,
    serialise_batch,
    serialise_held,
    serialise_records,
)
from adapter.identity.matcher import ID_CONFLICT, POSSIBLE_MATCH, Decision, classify
from adapter.identity.names import compare_names
from adapter.identity.rules import MatchingRules
from adapter.store.bound import bind_of
from adapter.store.fast_insert import insert_rows
from adapter.store.identity_tables import IdentityReview
from adapter.store.resources import held_writes


@dataclass(slots=True)
class IndexOutcome:
    persons: dict[str, str] = field(default_factory=dict)  # record id -> person id
    changed_persons: set[str] = field(default_factory=set)
    reviews: int = 0
    # pairs the limits left out (decision 0056): records of an oversized block not read, and
    # review pairs beyond limits.reviews_per_record
    not_compared: int = 0
    not_queued: int = 0
    # record id -> why this message's view of the record conflicts with the stored one
    conflicts: dict[str, str] = field(default_factory=dict)


def lock_for(session: Session, features: list[Features], given: list[set[str]]) -> None:
    """``given``: each record's blocking key hashes (``key_hash`` of ``blocking_keys()``)."""
    if bind_of(session).dialect.name != "postgresql":
        return  # SQLite: BEGIN IMMEDIATE serialises the index (locks.py)
    hashes = set().union(*given)
    hashes |= {key_hash(f"record|{f.record}") for f in features}
    records = [f.record for f in features]
    if serialise_held(session, hashes, records):
        return  # a bulk batch locked them at its start (decision 0101)
    # the keys the records have stored are locked too: read in the same statement
    serialise_records(session, hashes, records)


def lock_batch(
    session: Session, messages: list[tuple[list[dict[str, Any]], str]], rules: MatchingRules
) -> None:
    """PostgreSQL, a bulk batch: ``lock_for`` of every message's Patients (``messages``:
    each one's Patients and facility), in one statement before the first message
    (``serialise_batch``, decision 0101)."""
    if bind_of(session).dialect.name != "postgresql":
        return
    hashes: set[str] = set()
    records: set[str] = set()
    known: dict[int, tuple[dict[str, Any], str, MatchingRules, Features]] = {}
    asked: list[tuple[str, set[str]]] = []  # each record with its key hashes
    for patients, facility_id in messages:
        for patient in patients:
            features = features_of(patient, facility_id, rules)
            known[id(patient)] = (patient, facility_id, rules, features)
            given = {key_hash(k) for k in features.blocking_keys()}
            asked.append((features.record, given))
            hashes.update(given)
            hashes.add(key_hash(f"record|{features.record}"))
            records.add(features.record)
    if records:
        serialise_batch(session, hashes, sorted(records))
        writes = held_writes(session)
        if writes is not None:  # index_patients uses them (the same Patients, unchanged)
            writes.reads[_FEATURES] = known
        # under those locks: each Patient's ``near`` read for the batch at once (0122)
        rows.prefetch_near(session, asked, limit=rules.limits.candidates_per_key)


_FEATURES = "adapter.identity.batch-features"  # BatchWrites.reads: lock_batch's features


def _features(
    session: Session, patient: dict[str, Any], facility_id: str, rules: MatchingRules
) -> Features:
    """``features_of``, as ``lock_batch`` worked it out for this very Patient dictionary if
    it did (resolve_identity is the first step: nothing changed the Patient since)."""
    writes = held_writes(session)
    known = None if writes is None else writes.reads.get(_FEATURES)
    if known is not None:
        entry = known.get(id(patient))
        if entry is not None and entry[0] is patient and entry[1:3] == (facility_id, rules):
            return entry[3]
    return features_of(patient, facility_id, rules)


def index_patients(
    session: Session,
    patients: list[dict[str, Any]],
    *,
    facility_id: str,
    rules: MatchingRules,
    now: datetime,
    actor: str = rows.PIPELINE,
) -> IndexOutcome:
    features = [_features(session, p, facility_id, rules) for p in patients]
    session.flush()  # what the session holds is written: the index is read without autoflush
    # each record's key hashes, worked out once: the locks and the resolver use them
    given = [{key_hash(k) for k in f.blocking_keys()} for f in features]
    lock_for(session, features, given)
    outcome = IndexOutcome()
    for item, hashed in zip(features, given, strict=True):
        resolve_record(
            session, item, rules=rules, now=now, actor=actor, outcome=outcome, given=hashed
        )
    return outcome


def resolve_record(
    session: Session,
    features: Features,
    *,
    rules: MatchingRules,
    now: datetime,
    actor: str,
    outcome: IndexOutcome,
    given: set[str] | None = None,
) -> None:
    if given is None:
        given = {key_hash(k) for k in features.blocking_keys()}
    limit = rules.limits.candidates_per_key
    near = rows.near(session, features.record, given, limit=limit)
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
        if stored != features:
            features = features.union(stored)
            hashes = {key_hash(k) for k in features.blocking_keys()}
        else:  # the union of equal features is themselves: their keys are those given (0155)
            hashes = given
    else:  # the message's own keys, as given
        hashes = given
    if hashes - given:  # the stored record adds keys this message does not carry
        near.absorb(rows.near(session, features.record, hashes - given, limit=limit, own=False))
    if existing is not None:  # a new record's keys go with its row (insert_record)
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
    outcome.not_compared += near.omitted
    outcome.reviews += queue_reviews(
        session,
        features.record,
        [(o, d) for o, d in reviews if o.person_id != person],
        near=near,
        rules=rules,
        now=now,
        outcome=outcome,
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
            keys=hashes,
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


_review = IdentityReview.__table__
# the items of one record's pairs, whichever side of the pair it is (the pair index leads both)
_ITEMS_OF = select(
    _review.c.patient_id, _review.c.other_id, _review.c.state, _review.c.score, _review.c.evidence
).where(
    (
        (_review.c.patient_id == bindparam("patient_id"))
        & _review.c.other_id.in_(bindparam("after", expanding=True))
    )
    | (
        (_review.c.other_id == bindparam("patient_id"))
        & _review.c.patient_id.in_(bindparam("before", expanding=True))
    )
)
# SET takes the parameters' other keys
_UPDATE_ITEM = update(_review).where(
    _review.c.patient_id == bindparam("b_patient_id"), _review.c.other_id == bindparam("b_other_id")
)


def _strongest(pairs: list[tuple[Row[Any], Decision]]) -> list[tuple[Row[Any], Decision]]:
    """Which pairs a reviewer sees first when not all are queued: an ID conflict or a twin
    before a possible match, a higher score first, then the record indexed most recently."""
    recent = sorted(pairs, key=lambda p: (p[0].created_at, p[0].patient_id), reverse=True)
    return sorted(recent, key=lambda p: (p[1].reason == POSSIBLE_MATCH, -p[1].score))


def oversized_note(near: rows.Near, not_queued: int, rules: MatchingRules) -> str:
    """What a review item's evidence says of the pairs the limits left out (decision 0056)."""
    parts = []
    if near.omitted:
        more = near.largest > near.counted  # counted no further
        parts.append(
            f"{'at least ' if more else ''}{near.omitted} more look-alike records not compared "
            f"(a blocking key shared with {'more than ' if more else ''}"
            f"{near.counted if more else near.largest} records: the "
            f"{rules.limits.candidates_per_key} indexed most recently were compared)"
        )
    if not_queued:
        parts.append(
            f"{not_queued} more review items not queued (at most "
            f"{rules.limits.reviews_per_record} per record, the strongest)"
        )
    return "; ".join(parts)


def _noted(evidence: dict[str, Any], note: str) -> dict[str, Any]:
    return {**evidence, "oversizedBlock": note} if note else evidence


def queue_reviews(
    session: Session,
    patient_id: str,
    pairs: list[tuple[Row[Any], Decision]],
    *,
    near: rows.Near,
    rules: MatchingRules,
    now: datetime,
    outcome: IndexOutcome,
) -> int:
    """One review item per pair of records, whatever its state: a resolved pair stays
    resolved, an open or claimed one takes the pair's new score and evidence. At most
    ``limits.reviews_per_record`` pairs (the strongest); what the limits left out is said in
    each item's evidence (``oversizedBlock``). Core statements, batched: one SELECT, at most
    one UPDATE (executemany) and one INSERT per record. Nothing ``near`` reads changes here
    (identity_review is not a candidate table): no ``forget_near``. Returns the items opened."""
    if not pairs:
        return 0
    cap = rules.limits.reviews_per_record
    kept = _strongest(pairs)[:cap] if len(pairs) > cap else pairs
    outcome.not_queued += len(pairs) - len(kept)
    note = oversized_note(near, len(pairs) - len(kept), rules)
    wanted: dict[tuple[str, str], Decision] = {}
    for other, decision in kept:
        wanted[rows.ordered(patient_id, other.patient_id)] = decision
    connection = session.connection()
    found = connection.execute(
        _ITEMS_OF,
        {
            "patient_id": patient_id,
            "after": sorted(b for a, b in wanted if a == patient_id),
            "before": sorted(a for a, b in wanted if b == patient_id),
        },
    ).all()
    updates: list[dict[str, Any]] = []
    for item in found:
        decision = wanted.pop((item.patient_id, item.other_id))
        evidence = _noted(decision.evidence, note)
        if item.state != "resolved" and (item.score, item.evidence) != (decision.score, evidence):
            updates.append(
                {
                    "b_patient_id": item.patient_id,
                    "b_other_id": item.other_id,
                    "score": decision.score,
                    "evidence": evidence,
                    "updated_at": now,
                }
            )
    if updates:
        connection.execute(_UPDATE_ITEM, updates)
    insert_rows(
        session,
        _review,
        [
            {
                "patient_id": a,
                "other_id": b,
                "reason": decision.reason or POSSIBLE_MATCH,
                "state": "open",
                "version": 1,
                "rule_version": rules.version,
                "rule": decision.rule,
                "score": decision.score,
                "evidence": _noted(decision.evidence, note),
                "created_at": now,
                "updated_at": now,
            }
            for (a, b), decision in wanted.items()
        ],
    )
    return len(wanted)

"""Reading and writing the index rows (identity_record, identity_key, identity_history):
small helpers the resolver, the review queue and merges share. No commits."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, insert, select
from sqlalchemy.orm import Session

from adapter.store.identity_tables import (
    IdentityBlock,
    IdentityHistory,
    IdentityKey,
    IdentityRecord,
)

PIPELINE = "pipeline"
_key = IdentityKey.__table__
_record = IdentityRecord.__table__
_block = IdentityBlock.__table__


def own_person_id(patient_id: str) -> str:
    """The person a record starts as (before anything links it): deterministic, so that
    reprocessing the same messages gives the same ids."""
    # the form of adapter.mapping.ids.deterministic_id (not imported: mapping sits above)
    key = "\x1f".join(["Patient", "consortium-person", patient_id])
    return str(uuid.UUID(bytes=hashlib.sha256(key.encode("utf-8")).digest()[:16], version=5))


def ordered(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a <= b else (b, a)


def record(session: Session, patient_id: str) -> IdentityRecord | None:
    return session.get(IdentityRecord, patient_id)


def records_of_person(session: Session, person_id: str) -> list[IdentityRecord]:
    return list(
        session.scalars(
            select(IdentityRecord)
            .where(IdentityRecord.person_id == person_id)
            .order_by(IdentityRecord.created_at, IdentityRecord.patient_id)
        )
    )


def stored_hashes(session: Session, patient_ids: Iterable[str]) -> list[str]:
    ids = list(patient_ids)
    if not ids:
        return []
    return list(
        session.scalars(select(IdentityKey.key_hash).where(IdentityKey.patient_id.in_(ids)))
    )


@dataclass(slots=True)
class Near:
    """A record as the resolver reads it, in one statement (``near``): its row, the key
    hashes it has stored, and the records sharing a key with it, each with the key it
    shares and whether the pair is blocked."""

    existing: IdentityRecord | None = None
    stored_keys: set[str] = field(default_factory=set)
    others: list[tuple[IdentityRecord, str, bool]] = field(default_factory=list)

    def candidates(self, hashes: Collection[str]) -> list[tuple[IdentityRecord, bool]]:
        """The records sharing one of ``hashes`` (each once), oldest link first, as
        ``candidates`` orders them, with whether the pair is blocked."""
        found: dict[str, tuple[IdentityRecord, bool]] = {}
        for other, hashed, blocked in self.others:
            if hashed in hashes:
                found[other.patient_id] = (other, blocked)
        return sorted(found.values(), key=lambda o: (o[0].created_at, o[0].patient_id))


# ``near``'s first two statements, built once (ids as parameters): building an ORM
# statement and its cache key afresh cost about as much as running it (decision 0050)
_OWN = (
    select(IdentityRecord, IdentityKey.key_hash)
    .outerjoin(IdentityKey, IdentityKey.patient_id == IdentityRecord.patient_id)
    .where(IdentityRecord.patient_id == bindparam("patient_id"))
)
_SHARED = select(IdentityKey.patient_id, IdentityKey.key_hash).where(
    IdentityKey.key_hash.in_(bindparam("hashes", expanding=True)),
    IdentityKey.patient_id != bindparam("patient_id"),
)


def near(session: Session, patient_id: str, hashes: Collection[str], *, own: bool = True) -> Near:
    """The record ``patient_id`` with its stored keys (``own``), and the records sharing one
    of ``hashes`` with whether each pair is blocked.

    Three plain statements, each led by an index: one statement joining them (a UNION with a
    per-row EXISTS on the blocked pairs) was planned badly on PostgreSQL once a block held
    many records in one long transaction (the population test ran for over 15 minutes)."""
    out = Near()
    if own:
        rows = session.execute(_OWN, {"patient_id": patient_id})
        for found, hashed in rows:
            out.existing = found
            if hashed is not None:
                out.stored_keys.add(hashed)
    if not hashes:
        return out
    shared = session.execute(_SHARED, {"hashes": sorted(hashes), "patient_id": patient_id}).all()
    if not shared:
        return out
    ids = sorted({p for p, _ in shared})
    records = {
        r.patient_id: r
        for r in session.scalars(select(IdentityRecord).where(IdentityRecord.patient_id.in_(ids)))
    }
    blocked = {
        b if a == patient_id else a
        for a, b in session.execute(
            select(IdentityBlock.patient_id, IdentityBlock.other_id).where(
                (IdentityBlock.patient_id == patient_id) | (IdentityBlock.other_id == patient_id)
            )
        )
    }
    for other, hashed in shared:
        found = records.get(other)
        if found is not None:
            out.others.append((found, hashed, other in blocked))
    return out


def write_keys(
    session: Session, patient_id: str, hashes: Collection[str], stored: set[str]
) -> None:
    """The record's keys become ``hashes`` (``stored``: what it has now); nothing is written
    when they are the same."""
    if set(hashes) == stored:
        return
    if stored:
        session.execute(delete(_key).where(_key.c.patient_id == patient_id))
    if hashes:
        session.execute(
            insert(_key), [{"key_hash": h, "patient_id": patient_id} for h in sorted(hashes)]
        )


def candidates(session: Session, hashes: list[str], patient_id: str) -> list[IdentityRecord]:
    if not hashes:
        return []
    ids = select(IdentityKey.patient_id).where(
        IdentityKey.key_hash.in_(hashes), IdentityKey.patient_id != patient_id
    )
    return list(
        session.scalars(
            select(IdentityRecord)
            .where(IdentityRecord.patient_id.in_(ids))
            .order_by(IdentityRecord.created_at, IdentityRecord.patient_id)
        )
    )


def history(
    session: Session,
    *,
    at: datetime,
    action: str,
    actor: str,
    patient_id: str | None = None,
    person_id: str | None = None,
    previous_person_id: str | None = None,
    reason: str | None = None,
    rule_version: int | None = None,
    rule: str | None = None,
    score: float | None = None,
    evidence: Any = None,
) -> None:
    session.add(
        IdentityHistory(
            at=at,
            action=action,
            actor=actor,
            patient_id=patient_id,
            person_id=person_id,
            previous_person_id=previous_person_id,
            reason=reason,
            rule_version=rule_version,
            rule=rule,
            score=score,
            evidence=evidence,
        )
    )


def link_snapshot(row: IdentityRecord) -> dict[str, Any]:
    """A link exactly as it is (what unmerge puts back)."""
    return {
        "patient_id": row.patient_id,
        "person_id": row.person_id,
        "link_kind": row.link_kind,
        "rule_version": row.rule_version,
        "rule": row.rule,
        "score": row.score,
        "evidence": row.evidence,
    }

"""Reading and writing the index rows (identity_record, identity_key, identity_history):
small helpers the resolver, the review queue and merges share. No commits."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from adapter.identity.features import Features
from adapter.identity.index.locks import key_hash
from adapter.store.identity_tables import (
    IdentityBlock,
    IdentityHistory,
    IdentityKey,
    IdentityRecord,
)

PIPELINE = "pipeline"


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


def replace_keys(session: Session, features: Features) -> list[str]:
    hashes = sorted({key_hash(k) for k in features.blocking_keys()})
    session.execute(delete(IdentityKey).where(IdentityKey.patient_id == features.record))
    session.add_all(IdentityKey(key_hash=h, patient_id=features.record) for h in hashes)
    session.flush()
    return hashes


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


def blocked_with(session: Session, patient_id: str) -> set[str]:
    rows = session.execute(
        select(IdentityBlock.patient_id, IdentityBlock.other_id).where(
            (IdentityBlock.patient_id == patient_id) | (IdentityBlock.other_id == patient_id)
        )
    )
    return {b if a == patient_id else a for a, b in rows}


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

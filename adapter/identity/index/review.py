"""The review queue, merges and unmerges: every human decision about identity.

Review items move open -> claimed -> resolved. Claiming and resolving name the item's
``version`` (optimistic locking): a second reviewer acting on the version the first one
changed gets ``ConflictError`` (HTTP 409). Resolving ``match`` merges the two records'
persons; ``no-match`` blocks the pair from ever being linked automatically.

A merge moves every record of one person to another as a manual link and keeps the links
as they were (``identity_merge.snapshot``); an unmerge puts exactly those links back and can
block the two persons' records from linking again. Every step is a history row with who,
why and the rule version. Functions take a Session and never commit; the caller saves and
delivers the changed persons (``publish.publish_and_enqueue``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from adapter.errors import ConflictError, InvalidRequestError, NotFoundError
from adapter.identity.features import Features
from adapter.identity.index import records as rows
from adapter.identity.index.locks import key_hash, serialise
from adapter.identity.national_id import mask_national_id
from adapter.store.identity_tables import (
    IdentityBlock,
    IdentityHistory,
    IdentityMerge,
    IdentityRecord,
    IdentityReview,
)

DECISIONS = ("match", "no-match")


# -- reading ------------------------------------------------------------------------------


def _masked_name(name: str) -> str:
    return name[:1] + "*" * (len(name) - 1) if name else ""


def _masked_phone(phone: str) -> str:
    return "*" * max(0, len(phone) - 4) + phone[-4:]


def record_view(row: IdentityRecord | None, *, full_name: bool) -> dict[str, Any] | None:
    """One record for a reviewer: national IDs and phones masked; the name in full only in
    the side-by-side view of one item (a reviewer must compare names), never in a list."""
    if row is None:
        return None
    f = Features.from_json(row.features)
    return {
        "patient": f"Patient/{row.patient_id}",
        "person": f"Patient/{row.person_id}",
        "facility": row.facility_id,
        "name": f.name if full_name else _masked_name(f.name),
        "birthDate": f.birth,
        "gender": f.sex,
        "nationalIds": [mask_national_id(v) for v in f.national_ids],
        "invalidNationalIds": [mask_national_id(v) for v in f.weak_ids],
        "cards": [{"system": s, "value": mask_national_id(v)} for s, v in f.cards],
        "phones": [_masked_phone(p) for p in f.phones],
        "township": f.township,
        "link": {
            "kind": row.link_kind,
            "ruleVersion": row.rule_version,
            "rule": row.rule,
            "score": row.score,
            "evidence": row.evidence,
        },
    }


def item_summary(item: IdentityReview) -> dict[str, Any]:
    return {
        "id": item.id,
        "state": item.state,
        "version": item.version,
        "reason": item.reason,
        "records": [f"Patient/{item.patient_id}", f"Patient/{item.other_id}"],
        "ruleVersion": item.rule_version,
        "rule": item.rule,
        "score": item.score,
        "evidence": item.evidence,
        "claimedBy": item.claimed_by,
        "resolvedBy": item.resolved_by,
        "resolution": item.resolution,
        "note": item.note,
        "createdAt": item.created_at.isoformat(),
        "updatedAt": item.updated_at.isoformat(),
    }


def list_reviews(
    session: Session, *, state: str | None = None, limit: int = 50, offset: int = 0
) -> tuple[int, list[IdentityReview]]:
    query = select(IdentityReview)
    if state:
        query = query.where(IdentityReview.state == state)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    items = session.scalars(
        query.order_by(IdentityReview.created_at, IdentityReview.id).limit(limit).offset(offset)
    )
    return total, list(items)


def get_review(session: Session, item_id: int) -> IdentityReview:
    item = session.get(IdentityReview, item_id)
    if item is None:
        raise NotFoundError(f"review item {item_id} not found", location="id")
    return item


def side_by_side(session: Session, item: IdentityReview) -> dict[str, Any]:
    return {
        **item_summary(item),
        "left": record_view(rows.record(session, item.patient_id), full_name=True),
        "right": record_view(rows.record(session, item.other_id), full_name=True),
    }


def link_history(
    session: Session, *, patient_id: str | None = None, person_id: str | None = None
) -> list[dict[str, Any]]:
    query = select(IdentityHistory).order_by(IdentityHistory.id)
    if patient_id:
        query = query.where(IdentityHistory.patient_id == patient_id)
    if person_id:
        query = query.where(
            (IdentityHistory.person_id == person_id)
            | (IdentityHistory.previous_person_id == person_id)
        )
    return [
        {
            "at": h.at.isoformat(),
            "action": h.action,
            "patient": h.patient_id and f"Patient/{h.patient_id}",
            "person": h.person_id and f"Patient/{h.person_id}",
            "previousPerson": h.previous_person_id and f"Patient/{h.previous_person_id}",
            "actor": h.actor,
            "reason": h.reason,
            "ruleVersion": h.rule_version,
            "rule": h.rule,
            "score": h.score,
            "evidence": h.evidence,
        }
        for h in session.scalars(query)
    ]


# -- claiming and resolving ---------------------------------------------------------------


def _check_version(item: IdentityReview, version: int) -> None:
    if item.version != version:
        raise ConflictError(
            f"review item {item.id} is at version {item.version}, not {version}: someone "
            "else changed it; read it again",
            location="version",
        )


def claim(
    session: Session, item_id: int, *, reviewer: str, version: int, now: datetime
) -> IdentityReview:
    item = _locked_item(session, item_id)
    _check_version(item, version)
    if item.state != "open":
        raise ConflictError(f"review item {item_id} is {item.state}, not open", location="state")
    item.state, item.claimed_by, item.version, item.updated_at = (
        "claimed",
        reviewer,
        item.version + 1,
        now,
    )
    session.flush()
    return item


def resolve(
    session: Session,
    item_id: int,
    *,
    reviewer: str,
    version: int,
    decision: str,
    note: str | None,
    rule_version: int,
    now: datetime,
) -> set[str]:
    """Decide a claimed item. Returns the persons whose FHIR Patient changed."""
    if decision not in DECISIONS:
        raise InvalidRequestError(
            f"decision must be one of {', '.join(DECISIONS)}", location="decision"
        )
    item = _locked_item(session, item_id)
    _check_version(item, version)
    if item.state != "claimed" or item.claimed_by != reviewer:
        raise ConflictError(
            f"review item {item_id} must be claimed by {reviewer} before it is resolved",
            location="state",
        )
    item.state, item.resolved_by, item.resolution, item.note = "resolved", reviewer, decision, note
    item.version, item.updated_at = item.version + 1, now
    changed: set[str] = set()
    reason = f"review {item_id}: {decision}" + (f" ({note})" if note else "")
    if decision == "match":
        a, b = rows.record(session, item.patient_id), rows.record(session, item.other_id)
        if a is None or b is None:
            raise NotFoundError(f"review item {item_id}: a record is no longer indexed")
        if a.person_id != b.person_id:
            _, changed = merge_persons(
                session,
                a.person_id,
                b.person_id,
                actor=reviewer,
                reason=reason,
                rule_version=rule_version,
                now=now,
            )
    else:
        block_pair(session, item.patient_id, item.other_id, actor=reviewer, reason=reason, now=now)
        rows.history(
            session,
            at=now,
            action="not-duplicate",
            actor=reviewer,
            patient_id=item.patient_id,
            reason=f"{reason}; with Patient/{item.other_id}",
            rule_version=rule_version,
        )
    session.flush()
    return changed


def _locked_item(session: Session, item_id: int) -> IdentityReview:
    item = session.scalar(
        select(IdentityReview).where(IdentityReview.id == item_id).with_for_update()
    )
    if item is None:
        raise NotFoundError(f"review item {item_id} not found", location="id")
    return item


def block_pair(
    session: Session, a: str, b: str, *, actor: str, reason: str | None, now: datetime
) -> None:
    first, second = rows.ordered(a, b)
    rows.forget_near(session)
    if session.get(IdentityBlock, (first, second)) is None:
        session.add(
            IdentityBlock(patient_id=first, other_id=second, actor=actor, reason=reason, at=now)
        )


# -- merge and unmerge ---------------------------------------------------------------------


def _lock_persons(session: Session, person_ids: list[str]) -> list[IdentityRecord]:
    records = [r for p in person_ids for r in rows.records_of_person(session, p)]
    hashes = set(rows.stored_hashes(session, [r.patient_id for r in records]))
    hashes |= {key_hash(f"record|{r.patient_id}") for r in records}
    hashes |= {key_hash(f"person|{p}") for p in person_ids}
    serialise(session, hashes)
    # read again under the locks: a message may have linked a record meanwhile
    return [r for p in person_ids for r in rows.records_of_person(session, p)]


def merge_persons(
    session: Session,
    survivor: str,
    merged: str,
    *,
    actor: str,
    reason: str | None,
    rule_version: int,
    now: datetime,
) -> tuple[int, set[str]]:
    """Every record of ``merged`` linked to ``survivor`` (manual). Returns the merge id and
    the changed persons."""
    if survivor == merged:
        raise InvalidRequestError("a person cannot be merged into itself", location="merged")
    records = _lock_persons(session, [survivor, merged])
    rows.forget_near(session)
    moving = [r for r in records if r.person_id == merged]
    if not moving:
        raise NotFoundError(f"Patient/{merged} is not a consortium person with records")
    if not any(r.person_id == survivor for r in records):
        raise NotFoundError(f"Patient/{survivor} is not a consortium person with records")
    snapshot = [rows.link_snapshot(r) for r in records]
    for row in moving:
        row.person_id, row.link_kind, row.rule = survivor, "manual", "manual-merge"
        row.rule_version, row.updated_at = rule_version, now
        rows.history(
            session,
            at=now,
            action="merge",
            actor=actor,
            patient_id=row.patient_id,
            person_id=survivor,
            previous_person_id=merged,
            reason=reason,
            rule_version=rule_version,
        )
    merge = IdentityMerge(
        survivor_id=survivor,
        merged_id=merged,
        at=now,
        actor=actor,
        reason=reason,
        snapshot=snapshot,
    )
    session.add(merge)
    session.flush()
    return merge.id, {survivor, merged}


def unmerge(
    session: Session,
    merge_id: int,
    *,
    actor: str,
    reason: str | None,
    block: bool,
    rule_version: int,
    now: datetime,
) -> set[str]:
    """The links of a merge put back exactly as they were before it; with ``block``, no
    record of one side is ever linked automatically to a record of the other again."""
    merge = session.get(IdentityMerge, merge_id)
    if merge is None:
        raise NotFoundError(f"merge {merge_id} not found", location="id")
    if merge.undone_at is not None:
        raise ConflictError(f"merge {merge_id} was already undone", location="id")
    _lock_persons(session, [merge.survivor_id, merge.merged_id])
    rows.forget_near(session)
    restored: dict[str, list[str]] = {}
    for link in merge.snapshot:
        row = rows.record(session, link["patient_id"])
        if row is None:
            continue
        before = row.person_id
        row.person_id, row.link_kind = link["person_id"], link["link_kind"]
        row.rule_version, row.rule = link["rule_version"], link["rule"]
        row.score, row.evidence, row.updated_at = link["score"], link["evidence"], now
        restored.setdefault(link["person_id"], []).append(row.patient_id)
        if before != row.person_id:
            rows.history(
                session,
                at=now,
                action="unmerge",
                actor=actor,
                patient_id=row.patient_id,
                person_id=row.person_id,
                previous_person_id=before,
                reason=reason,
                rule_version=rule_version,
            )
    if block:
        sides = list(restored.values())
        for x in range(len(sides)):
            for y in range(x + 1, len(sides)):
                for a in sides[x]:
                    for b in sides[y]:
                        block_pair(session, a, b, actor=actor, reason=reason, now=now)
    merge.undone_at, merge.undone_by = now, actor
    session.flush()
    return {merge.survivor_id, merge.merged_id}


def merges_of(session: Session, person_id: str) -> list[IdentityMerge]:
    return list(
        session.scalars(
            select(IdentityMerge)
            .where(
                (IdentityMerge.survivor_id == person_id) | (IdentityMerge.merged_id == person_id)
            )
            .order_by(IdentityMerge.id)
        )
    )

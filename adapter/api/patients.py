"""The consortium patient index over HTTP (docs/patient-index.md).

POST /fhir/Patient/$match                      IHE PDQm ITI-119: Parameters(resource,
                                               onlyCertainMatches, count) -> search-set
GET  /fhir/Patient/$ihe-pix?sourceIdentifier=s|v[&targetSystem=t]   IHE PIXm ITI-83
GET  /patient-index/lookup?identifier=s|v      the persons and every linked record
GET  /patient-index/persons/{id}               a person: records, links, history, merges
GET  /patient-index/reviews[?state=open]       the review queue (names masked)
GET  /patient-index/reviews/{id}               one item, both records side by side
POST /patient-index/reviews/{id}/claim         {"reviewer", "version"}; 409 on a stale version
POST /patient-index/reviews/{id}/resolve       {"reviewer", "version", "decision", "note"}
POST /patient-index/merges                     {"survivor", "merged", "actor", "reason"}
                                               (a merge or a "match" sends each caring
                                               facility the other side's recent history)
POST /patient-index/merges/{id}/unmerge        {"actor", "reason", "block"}
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session
from starlette.responses import JSONResponse

from adapter.api.deps import SessionDep, SessionFactoryDep
from adapter.api.responses import FHIRResponse
from adapter.errors import InvalidRequestError, NotFoundError
from adapter.identity.index import lookup, review
from adapter.identity.index import records as rows
from adapter.identity.index.publish import publish_and_enqueue
from adapter.identity.rules import MatchingRules, rules_at
from adapter.pipeline.catchup import IdentityCare

router = APIRouter(tags=["patient index"])


def _rules(request: Request) -> MatchingRules:
    return rules_at(request.app.state.consortium.patient_index.matching_rules)


def _publish(request: Request, session: Session, changed: set[str], now: datetime) -> None:
    """Persons stored and delivered when the consortium publishes them (else the index
    alone holds them: $match, $ihe-pix and /patient-index build them on request)."""
    config = request.app.state.consortium.patient_index
    if config.publish_persons:
        publish_and_enqueue(session, changed, destinations=list(config.deliver_to), now=now)


@router.post("/fhir/Patient/$match")
def patient_match(
    request: Request, session: SessionDep, body: Annotated[dict[str, Any], Body()]
) -> FHIRResponse:
    if body.get("resourceType") != "Parameters":
        raise InvalidRequestError("the body must be a Parameters resource", location="resourceType")
    patient: dict[str, Any] | None = None
    only_certain, count = False, 10
    for p in body.get("parameter") or []:
        if p.get("name") == "resource":
            patient = p.get("resource")
        elif p.get("name") == "onlyCertainMatches":
            only_certain = bool(p.get("valueBoolean"))
        elif p.get("name") == "count":
            count = int(p.get("valueInteger") or 10)
    if not isinstance(patient, dict) or patient.get("resourceType") != "Patient":
        raise InvalidRequestError("parameter 'resource' must be a Patient", location="resource")
    found = lookup.match(session, patient, _rules(request), count=max(1, min(count, 100)))
    base = str(request.base_url).rstrip("/") + "/fhir"
    return FHIRResponse(lookup.match_bundle(session, found, only_certain=only_certain, base=base))


@router.get("/fhir/Patient/$ihe-pix")
def patient_pix(
    request: Request,
    session: SessionDep,
    source_identifier: Annotated[str, Query(alias="sourceIdentifier")],
    target_system: Annotated[list[str] | None, Query(alias="targetSystem")] = None,
) -> FHIRResponse:
    answer = lookup.pix(
        session,
        request.app.state.consortium,
        _rules(request),
        source_identifier,
        target_system or [],
    )
    return FHIRResponse(answer)


@router.get("/patient-index/lookup")
def lookup_identifier(session: SessionDep, identifier: str) -> JSONResponse:
    system, sep, value = identifier.partition("|")
    if not sep or not value:
        raise InvalidRequestError("identifier must be system|value", location="identifier")
    persons, records = lookup.linked_everything(session, system, value)
    return JSONResponse(
        {
            "persons": [f"Patient/{p}" for p in persons],
            "records": [f"Patient/{r}" for r in records],
        }
    )


@router.get("/patient-index/persons/{person_id}")
def person(session: SessionDep, person_id: str) -> JSONResponse:
    records = rows.records_of_person(session, person_id)
    merges = review.merges_of(session, person_id)
    if not records and not merges:
        raise NotFoundError(f"Patient/{person_id} is not a consortium person", location="id")
    return JSONResponse(
        {
            "person": f"Patient/{person_id}",
            "records": [review.record_view(r, full_name=False) for r in records],
            "merges": [
                {
                    "id": m.id,
                    "survivor": f"Patient/{m.survivor_id}",
                    "merged": f"Patient/{m.merged_id}",
                    "at": m.at.isoformat(),
                    "actor": m.actor,
                    "reason": m.reason,
                    "undoneAt": m.undone_at.isoformat() if m.undone_at else None,
                }
                for m in merges
            ],
            "history": review.link_history(session, person_id=person_id),
        }
    )


@router.get("/patient-index/reviews")
def reviews(
    session: SessionDep,
    state: Literal["open", "claimed", "resolved"] | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> JSONResponse:
    total, items = review.list_reviews(session, state=state, limit=limit, offset=offset)
    return JSONResponse(
        {
            "total": total,
            "items": [
                {
                    **review.item_summary(i),
                    "left": review.record_view(rows.record(session, i.patient_id), full_name=False),
                    "right": review.record_view(rows.record(session, i.other_id), full_name=False),
                }
                for i in items
            ],
        }
    )


@router.get("/patient-index/reviews/{item_id}")
def review_item(session: SessionDep, item_id: int) -> JSONResponse:
    return JSONResponse(review.side_by_side(session, review.get_review(session, item_id)))


class Claim(BaseModel):
    reviewer: str = Field(min_length=1, max_length=128)
    version: int


class Resolution(Claim):
    decision: Literal["match", "no-match"]
    note: str | None = Field(None, max_length=2000)


@router.post("/patient-index/reviews/{item_id}/claim")
def claim(factory: SessionFactoryDep, item_id: int, body: Claim) -> JSONResponse:
    with factory.begin() as session:
        item = review.claim(
            session, item_id, reviewer=body.reviewer, version=body.version, now=datetime.now(UTC)
        )
        return JSONResponse(review.item_summary(item))


@router.post("/patient-index/reviews/{item_id}/resolve")
def resolve(
    request: Request, factory: SessionFactoryDep, item_id: int, body: Resolution
) -> JSONResponse:
    now = datetime.now(UTC)
    with factory.begin() as session:
        item = review.get_review(session, item_id)
        watch = IdentityCare(
            session, request.app.state.consortium, [item.patient_id, item.other_id], now
        )
        changed = review.resolve(
            session,
            item_id,
            reviewer=body.reviewer,
            version=body.version,
            decision=body.decision,
            note=body.note,
            rule_version=_rules(request).version,
            now=now,
        )
        watch.finish(changed, reason=f"review {item_id}: {body.decision}")
        _publish(request, session, changed, now)
        return JSONResponse(review.item_summary(review.get_review(session, item_id)))


class Merge(BaseModel):
    survivor: str = Field(min_length=1, max_length=64)
    merged: str = Field(min_length=1, max_length=64)
    actor: str = Field(min_length=1, max_length=128)
    reason: str | None = Field(None, max_length=2000)


class Unmerge(BaseModel):
    actor: str = Field(min_length=1, max_length=128)
    reason: str | None = Field(None, max_length=2000)
    block: bool = True


def _bare(ref: str) -> str:
    return ref.removeprefix("Patient/")


@router.post("/patient-index/merges")
def merge(request: Request, factory: SessionFactoryDep, body: Merge) -> JSONResponse:
    now = datetime.now(UTC)
    with factory.begin() as session:
        persons = [_bare(body.survivor), _bare(body.merged)]
        watch = IdentityCare(session, request.app.state.consortium, persons, now)
        merge_id, changed = review.merge_persons(
            session,
            *persons,
            actor=body.actor,
            reason=body.reason,
            rule_version=_rules(request).version,
            now=now,
        )
        watch.finish(changed, reason=f"merge {merge_id}")
        _publish(request, session, changed, now)
    return JSONResponse({"merge": merge_id, "persons": sorted(f"Patient/{p}" for p in changed)})


@router.post("/patient-index/merges/{merge_id}/unmerge")
def unmerge(
    request: Request, factory: SessionFactoryDep, merge_id: int, body: Unmerge
) -> JSONResponse:
    now = datetime.now(UTC)
    with factory.begin() as session:
        changed = review.unmerge(
            session,
            merge_id,
            actor=body.actor,
            reason=body.reason,
            block=body.block,
            rule_version=_rules(request).version,
            now=now,
        )
        _publish(request, session, changed, now)
    return JSONResponse({"unmerged": merge_id, "persons": sorted(f"Patient/{p}" for p in changed)})

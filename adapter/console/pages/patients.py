"""患者 Patients: the patient index review queue (both records side by side with the rule
and its evidence; claim, link / not a match), a person's linked records, care
relationships, merges and link history, merge and unmerge.

The patient index spans the consortium: these pages are for operators (and the admin) of
``scope: consortium``, as ``/patient-index`` is. The actions call the same handlers as
``POST /patient-index/...`` (the care catch-up and person publication included), with the
logged-in client as reviewer or actor. Lists mask names; the one-item view shows both
names in full, as the API's does, because a reviewer must compare them; national IDs and
phones are masked everywhere (adapter/identity/index/review.py).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select

from adapter.api import patients as api
from adapter.api.deps import SessionDep
from adapter.console.access import current_session
from adapter.console.render import SECURITY_HEADERS, page
from adapter.errors import AdapterError, NotFoundError
from adapter.identity.index import records as rows
from adapter.identity.index import review
from adapter.store.models import CareRelationship

router = APIRouter(include_in_schema=False)
STATES = ("open", "claimed", "resolved")


def _done(path: str) -> Response:
    return RedirectResponse(path, status_code=303, headers=SECURITY_HEADERS)


def _failed(request: Request, exc: AdapterError) -> HTMLResponse:
    return page(
        request, "failed.html", status=exc.http_status, active="patients", error=exc.message
    )


@router.get("/console/patients", name="console_patients", response_class=HTMLResponse)
def console_patients(request: Request, session: SessionDep, state: str = "open") -> HTMLResponse:
    state = state if state in STATES else "open"
    total, items = review.list_reviews(session, state=state, limit=100)
    listed = [
        {
            **review.item_summary(i),
            "left": review.record_view(rows.record(session, i.patient_id), full_name=False),
            "right": review.record_view(rows.record(session, i.other_id), full_name=False),
        }
        for i in items
    ]
    return page(
        request,
        "patients.html",
        active="patients",
        items=listed,
        total=total,
        state=state,
        states=STATES,
    )


@router.get(
    "/console/patients/reviews/{item_id}", name="console_review", response_class=HTMLResponse
)
def console_review(item_id: int, request: Request, session: SessionDep) -> HTMLResponse:
    try:
        item = review.side_by_side(session, review.get_review(session, item_id))
    except NotFoundError:
        return page(request, "not_found.html", status=404, active="patients", what=item_id)
    return page(request, "review.html", active="patients", item=item)


@router.post("/console/patients/reviews/{item_id}/claim", name="console_review_claim")
def console_review_claim(
    item_id: int, request: Request, version: Annotated[int, Form()]
) -> Response:
    reviewer = current_session(request).client
    try:
        api.claim(
            request.app.state.session_factory,
            item_id,
            api.Claim(reviewer=reviewer, version=version),
        )
    except AdapterError as exc:
        return _failed(request, exc)
    return _done(f"/console/patients/reviews/{item_id}")


@router.post("/console/patients/reviews/{item_id}/resolve", name="console_review_resolve")
def console_review_resolve(
    item_id: int,
    request: Request,
    version: Annotated[int, Form()],
    decision: Annotated[str, Form()],
    note: Annotated[str, Form()] = "",
) -> Response:
    if decision not in ("match", "no-match"):
        return page(request, "not_found.html", status=404, active="patients", what=decision)
    body = api.Resolution(
        reviewer=current_session(request).client,
        version=version,
        decision=decision,  # type: ignore[arg-type]
        note=note.strip()[:2000] or None,
    )
    try:
        api.resolve(request, request.app.state.session_factory, item_id, body)
    except AdapterError as exc:
        return _failed(request, exc)
    return _done(f"/console/patients/reviews/{item_id}")


@router.get(
    "/console/patients/persons/{person_id}", name="console_person", response_class=HTMLResponse
)
def console_person(person_id: str, request: Request, session: SessionDep) -> HTMLResponse:
    records = rows.records_of_person(session, person_id)
    merges = review.merges_of(session, person_id)
    if not records and not merges:
        return page(request, "not_found.html", status=404, active="patients", what=person_id)
    care = session.scalars(
        select(CareRelationship)
        .where(CareRelationship.person_id == person_id)
        .order_by(CareRelationship.start_at)
    ).all()
    return page(
        request,
        "person.html",
        active="patients",
        person_id=person_id,
        records=[review.record_view(r, full_name=False) for r in records],
        merges=merges,
        care=care,
        history=review.link_history(session, person_id=person_id),
    )


@router.post("/console/patients/merges", name="console_merge")
def console_merge(
    request: Request,
    survivor: Annotated[str, Form()],
    merged: Annotated[str, Form()],
    reason: Annotated[str, Form()] = "",
) -> Response:
    body = api.Merge(
        survivor=survivor.strip(),
        merged=merged.strip(),
        actor=current_session(request).client,
        reason=reason.strip()[:2000] or None,
    )
    try:
        api.merge(request, request.app.state.session_factory, body)
    except AdapterError as exc:
        return _failed(request, exc)
    return _done(f"/console/patients/persons/{api._bare(body.survivor)}")


@router.post("/console/patients/merges/{merge_id}/unmerge", name="console_unmerge")
def console_unmerge(
    merge_id: int,
    request: Request,
    person: Annotated[str, Form()],
    reason: Annotated[str, Form()] = "",
) -> Response:
    body = api.Unmerge(actor=current_session(request).client, reason=reason.strip() or None)
    try:
        api.unmerge(request, request.app.state.session_factory, merge_id, body)
    except AdapterError as exc:
        return _failed(request, exc)
    return _done(f"/console/patients/persons/{person}")

"""A person's consent for 检查检验结果互认 over HTTP (docs/recognition.md, "Consent";
docs/decisions/0043-recognition-consent.md).

* ``POST /recognition/consent`` ``{patient, facility, end, start?, by?}``: the person
  consents that ``facility`` be shown their results for recognition until ``end``;
  answered with the FHIR ``Consent`` stored (201), or with the active one that already
  allows the facility for that whole period (200: a repeated request stores nothing).
* ``POST /recognition/consent/{id}/revoke`` ``{by?}``: the person withdrew it; answered with
  the new, ``inactive`` version (200).

A facility records and revokes consents for itself only (403 for another; 404 for another
facility's consent). Both are audited (``consent.recorded``, ``consent.revoked``).
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from adapter.api.care import with_zone
from adapter.api.deps import SessionFactoryDep
from adapter.api.facility import check_named, own_facility
from adapter.api.fhir_request import check_id
from adapter.api.recognition import catalogue_of, known_facility
from adapter.api.responses import FHIRResponse
from adapter.audit.context import acting_client
from adapter.recognition.consent import ConsentInput, record_consent, revoke_consent

router = APIRouter(tags=["Recognition"])


class ConsentBody(BaseModel):
    patient: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9\-\.]+$")
    facility: str = Field(min_length=1, max_length=64)
    end: datetime = Field(description="until when (exclusive), with a zone offset")
    start: datetime | None = Field(None, description="from when; default now")
    by: str | None = Field(None, max_length=64, description="who took it (staff number)")


class RevokeBody(BaseModel):
    by: str | None = Field(None, max_length=64)


@router.post(
    "/recognition/consent",
    name="recognition_consent",
    status_code=201,
    summary="Record a person's consent that a facility be shown their results for "
    "mutual recognition (互认), as a FHIR Consent",
)
async def consent(body: ConsentBody, request: Request, factory: SessionFactoryDep) -> FHIRResponse:
    catalogue_of(request)
    known_facility(request.app.state.consortium, body.facility)
    check_named(request, body.facility)
    end = with_zone(body.end, "end")
    start = with_zone(body.start, "start")
    assert end is not None
    given = ConsentInput(body.patient, body.facility, end=end, start=start, by=body.by)
    actor = acting_client()

    def write() -> tuple[dict, bool]:
        with factory.begin() as session:
            return record_consent(
                session, request.app.state.consortium, given, now=datetime.now(UTC), actor=actor
            )

    stored, created = await run_in_threadpool(write)
    location = f"{str(request.base_url).rstrip('/')}/fhir/Consent/{stored['id']}"
    return FHIRResponse(
        stored,
        # 200: an active consent already allowed this (a repeated request), nothing stored
        status_code=201 if created else 200,
        headers={"Location": f"{location}/_history/{stored['meta']['versionId']}"},
    )


@router.post(
    "/recognition/consent/{consent_id}/revoke",
    name="recognition_consent_revoke",
    summary="The person withdrew a recognition consent: a new version, status inactive",
)
async def revoke(
    consent_id: str, request: Request, factory: SessionFactoryDep, body: RevokeBody | None = None
) -> FHIRResponse:
    catalogue_of(request)
    check_id(consent_id)
    # a facility withdraws its own consents only; the consortium's operators any
    facility = own_facility(request)
    actor = acting_client()

    def write() -> dict:
        with factory.begin() as session:
            stored, _changed = revoke_consent(
                session,
                consent_id,
                now=datetime.now(UTC),
                actor=actor,
                facility_id=facility,
                by=body.by if body else None,
            )
            return stored

    return FHIRResponse(await run_in_threadpool(write))

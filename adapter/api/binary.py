"""``GET /fhir/Binary/{message id}``: an inbound message exactly as received, as a FHIR
``Binary`` (base64 ``data``, the sender's ``contentType``), checked against its sha256.

It is what a ``Provenance.entity`` names (adapter/pipeline/provenance.py). Always a Binary
resource in JSON, never the raw bytes with the sender's media type: a browser must not
render what a sender chose. Reading it is a disclosure and is audited like any read.
"""

from __future__ import annotations

import base64

from fastapi import APIRouter, Request

from adapter.api.deps import SessionDep
from adapter.api.disclosure import disclosed
from adapter.api.facility import check_owned
from adapter.api.ingest import original_content_type
from adapter.api.responses import FHIRResponse
from adapter.errors import NotFoundError
from adapter.store import get_message, verified_raw

router = APIRouter(prefix="/fhir", tags=["FHIR"])


@router.get("/Binary/{message_id}", name="fhir_binary", summary="An inbound message as received")
def binary(message_id: str, request: Request, session: SessionDep) -> FHIRResponse:
    found = get_message(session, message_id[:64])
    if found is None:
        raise NotFoundError(f"Binary/{message_id[:64]} is not known", location="id")
    check_owned(request, found.facility_id, f"Binary/{message_id[:64]}")
    raw = verified_raw(found)  # 409 if the kept bytes no longer match their sha256
    body = {
        "resourceType": "Binary",
        "id": found.id,
        "contentType": original_content_type(found.content_type) or "application/octet-stream",
        "data": base64.b64encode(raw).decode("ascii"),
    }
    patients = tuple(r for r in found.resources or () if r.startswith("Patient/"))
    disclosed(
        request,
        "fhir.read",
        [{"resourceType": "Binary", "id": found.id}],
        interaction="read",
        resource_type="Binary",
        patients=patients,
        message_id=found.id,
        session=session,
    )
    return FHIRResponse(body)

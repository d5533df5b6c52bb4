"""The consortium person as a FHIR Patient: built from the index, never edited by hand.

One identifier of the consortium (``PERSON_SYSTEM``) plus every identifier of its records (so a
search by any of them finds the person), the demographics of its first record, and
``Patient.link`` ``seealso`` to each record. A person merged into another is inactive with
``replaced-by`` the survivor; the survivor ``replaces`` it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from adapter.identity.features import Features
from adapter.identity.index.records import records_of_person
from adapter.store.identity_tables import IdentityMerge

PERSON_SYSTEM = "https://yigongti-fhir-adapter.github.io/fhir/sid/consortium-person"


def person_resource(session: Session, person_id: str) -> dict[str, Any]:
    records = records_of_person(session, person_id)
    merges = session.execute(
        select(IdentityMerge.survivor_id, IdentityMerge.merged_id).where(
            IdentityMerge.undone_at.is_(None),
            (IdentityMerge.survivor_id == person_id) | (IdentityMerge.merged_id == person_id),
        )
    ).all()
    body: dict[str, Any] = {
        "resourceType": "Patient",
        "id": person_id,
        "identifier": [{"use": "official", "system": PERSON_SYSTEM, "value": person_id}],
        "active": bool(records),
    }
    name = birth = sex = None
    for row in records:
        features = Features.from_json(row.features)
        for ident in features.identifiers:
            if ident not in body["identifier"]:
                body["identifier"].append(dict(ident))
        name = name or features.name or None
        birth = birth or features.birth
        sex = sex or features.sex
    if name:
        body["name"] = [{"use": "official", "text": name}]
    if sex:
        body["gender"] = sex
    if birth:
        body["birthDate"] = birth
    links = [
        {"other": {"reference": f"Patient/{r.patient_id}"}, "type": "seealso"} for r in records
    ]
    for survivor, merged in merges:
        if merged == person_id and not records:
            links.append({"other": {"reference": f"Patient/{survivor}"}, "type": "replaced-by"})
        elif survivor == person_id:
            links.append({"other": {"reference": f"Patient/{merged}"}, "type": "replaces"})
    if links:
        body["link"] = links
    return body

"""The answer of ``$recognisable`` as a FHIR ``Parameters`` resource (one ``item`` part per
item asked, one ``result`` part per stored result), and its JSON for the command line."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from adapter.consortium import Consortium
from adapter.recognition.catalogue import Catalogue
from adapter.recognition.query import EXCLUDED, WHY, Candidate, ItemAnswer, zone_of

BASE = "https://yigongti-fhir-adapter.github.io/fhir"
ITEM_SYSTEM = f"{BASE}/CodeSystem/recognition-item"  # the catalogue's common item codes
WHY_SYSTEM = f"{BASE}/CodeSystem/recognition-unavailable"  # why a result is not recognisable
REASON_SYSTEM = f"{BASE}/CodeSystem/recognition-refusal"  # a doctor's reason (reasons:)
MARK_SYSTEM = f"{BASE}/CodeSystem/recognition-mark"  # the mark shown (HR, ★ ...)


def why(code: str) -> dict[str, Any]:
    return {"system": WHY_SYSTEM, "code": code, "display": WHY[code]}


def parameters(
    answers: list[ItemAnswer], catalogue: Catalogue, consortium: Consortium
) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [
        {"name": "catalogue", "valueString": catalogue.edition},
    ]
    for answer in answers:
        parts.append({"name": "item", "part": _item(answer, consortium, zone_of(consortium))})
    return {"resourceType": "Parameters", "parameter": parts}


def _item(answer: ItemAnswer, consortium: Consortium, zone: ZoneInfo) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{"name": "asked", "valueString": answer.asked}]
    item = answer.item
    if item is not None:
        out.append(
            {
                "name": "code",
                "valueCoding": {"system": ITEM_SYSTEM, "code": item.code, "display": item.name},
            }
        )
        out.append({"name": "kind", "valueCode": item.kind.value})
        out.append({"name": "mark", "valueString": item.mark})
        out.append({"name": "recognises", "valueCode": item.recognises})
    outcome = "recognisable" if answer.recognisable else "not-recognisable"
    out.append({"name": "outcome", "valueCode": outcome})
    if answer.reason:
        out.append({"name": "reason", "valueCoding": why(answer.reason)})
    for candidate in answer.candidates:
        part = _result(candidate, consortium, zone)
        if candidate.recognisable and item is not None:
            # what a receiving HIS shows beside the recognised result (HR, 鄂HR, ★ ...)
            part.insert(
                2, {"name": "mark", "valueCoding": {"system": MARK_SYSTEM, "code": item.mark}}
            )
        out.append({"name": "result", "part": part})
    return out


def _result(candidate: Candidate, consortium: Consortium, zone: ZoneInfo) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [
        {"name": "reference", "valueReference": {"reference": candidate.reference}},
        {"name": "recognisable", "valueBoolean": candidate.recognisable},
    ]
    if candidate.facility_id:
        facility = consortium.facility(candidate.facility_id)
        out.append(
            {
                "name": "issuer",
                "valueReference": {
                    "identifier": {"value": candidate.facility_id},
                    "display": facility.name if facility else candidate.facility_id,
                },
            }
        )
    if candidate.taken:
        out.append({"name": "date", "valueDateTime": _local(candidate.taken, zone)})
    if candidate.expires:
        out.append({"name": "expires", "valueDateTime": _local(candidate.expires, zone)})
    if candidate.status:
        out.append({"name": "status", "valueCode": candidate.status})
    if candidate.reason:
        out.append({"name": "reason", "valueCoding": why(candidate.reason)})
    if candidate.detail:
        out.append({"name": "detail", "valueString": candidate.detail})
    if candidate.reference.startswith("DiagnosticReport/"):
        out.extend({"name": "excluded", "valueString": element} for element in EXCLUDED)
    return out


def _local(moment: dt.datetime, zone: ZoneInfo) -> str:
    """A dateTime in the consortium's zone (what the doctor reads: +08:00)."""
    return moment.astimezone(zone).isoformat(timespec="seconds")
